"""Times EmbedSeg 0.2.5's own BranchedERFNet and SpatialEmbLoss in PyTorch
(CPU), for `esx bench train --torch PYTHON`, which calls this once per shape
and prints both sides. Never needed by CI or by esx itself.

    python bench_torch.py train BATCH_FILE STEPS THREADS
    python bench_torch.py infer N SIZE RUNS THREADS
    python bench_torch.py cluster OUTPUT_FILE RUNS THREADS
    python bench_torch.py predict WEIGHTS|- IMAGE_FILE RUNS THREADS

BATCH_FILE is a safetensors file written by esx (images [B,1,S,S], labels and
centers [B,S,S]), so both sides time the same batch. Prints one JSON line.
ESX_BENCH_DEVICE (set by esx: cpu or cuda:N) says where train and infer run;
on a GPU each phase is timed to a torch.cuda.synchronize(), the peak memory
PyTorch's tensors held (max_memory_allocated) and its caching allocator
reserved (max_memory_reserved) are reported, and ESX_BENCH_PRECISION (tf32,
PyTorch's default for cuDNN convolutions, or fp32) sets
torch.backends.cudnn.allow_tf32. cudnn.benchmark is on, as EmbedSeg's
train.py and test.py set it.
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(__file__))
import embedseg_import  # noqa: E402

embedseg_import.install()
from EmbedSeg.criterions.my_loss import SpatialEmbLoss  # noqa: E402
from EmbedSeg.models.BranchedERFNet import BranchedERFNet  # noqa: E402

DEVICE = torch.device(os.environ.get("ESX_BENCH_DEVICE", "cpu"))
PRECISION = os.environ.get("ESX_BENCH_PRECISION", "tf32")
if DEVICE.type == "cuda":
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = PRECISION == "tf32"
    # PyTorch's default (matmuls are not TF32 unless asked), as esx's.
    torch.backends.cuda.matmul.allow_tf32 = False


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def peak_gpu():
    """PyTorch's peak GPU memory: what its tensors held, what it reserved (MB)."""
    if DEVICE.type != "cuda":
        return {"peak_gpu_mb": 0.0, "peak_gpu_reserved_mb": 0.0}
    return {"peak_gpu_mb": torch.cuda.max_memory_allocated(DEVICE) / 1e6,
            "peak_gpu_reserved_mb": torch.cuda.max_memory_reserved(DEVICE) / 1e6}

# EmbedSeg's test configuration: seed 0.9, foreground 0.5; its min_object_size
# is a strict lower bound, esx's min_size an inclusive one.
SEED_THRESH, FG_THRESH, MIN_OBJECT_SIZE = 0.9, 0.5, 9


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model():
    torch.manual_seed(0)
    net = BranchedERFNet(num_classes=[4, 1], input_channels=1)
    net.init_output(2)
    return net


def train(batch_file, steps, threads):
    torch.set_num_threads(threads)
    b = load_file(batch_file)
    x = torch.from_numpy(b["images"])
    inst = torch.from_numpy(b["labels"].astype(np.int64)).to(DEVICE)
    lab = (inst > 0).long()
    ctr = torch.from_numpy(b["centers"] > 0).to(DEVICE)
    net = model().to(DEVICE).train()
    crit = SpatialEmbLoss(n_sigma=2, foreground_weight=10).to(DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4, weight_decay=1e-4)
    times = []
    for i in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        out = net(x.to(DEVICE))  # the batch goes up every step, as in esx
        sync()
        t1 = time.perf_counter()
        loss = crit(out, inst, lab, ctr, w_inst=1, w_var=10, w_seed=1)
        loss.item()
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        t3 = time.perf_counter()
        if i > 0:
            times.append((t1 - t0, t2 - t1, t3 - t2))
    med = np.median(np.array(times), axis=0)
    return {"forward": med[0], "loss": med[1], "backward_adam": med[2], "step": float(med.sum()),
            "peak_rss_mb": peak_rss_mb(), **peak_gpu()}


def infer(n, size, runs, threads):
    torch.set_num_threads(threads)
    net = model().to(DEVICE).eval()
    x = torch.zeros(n, 1, size, size)
    times = []
    with torch.no_grad():
        for i in range(runs + 1):
            sync()
            t0 = time.perf_counter()
            net(x.to(DEVICE)).cpu()  # up, through, and the maps back, as in esx
            if i > 0:
                times.append(time.perf_counter() - t0)
    return {"forward": float(np.median(times)), "peak_rss_mb": peak_rss_mb(), **peak_gpu()}


def clusterer(h, w):
    from EmbedSeg.utils.utils import Cluster  # matplotlib, pandas, seaborn: only here

    # EmbedSeg's grid, sized to the image with its pixel spacing 1/1023
    # (its fixed 1024 grid cannot hold a 2048 image).
    return Cluster(h, w, (h - 1) / 1023.0, (w - 1) / 1023.0, torch.device("cpu"))


def time_cluster(cl, out, runs):
    times, found = [], 0
    for i in range(runs + 1):
        t0 = time.perf_counter()
        inst = cl.cluster(out, n_sigma=2, seed_thresh=SEED_THRESH, fg_thresh=FG_THRESH,
                          min_object_size=MIN_OBJECT_SIZE)
        if i > 0:
            times.append(time.perf_counter() - t0)
        found = len(np.unique(inst.numpy())) - 1
    return float(np.median(times)), found


def cluster(output_file, runs, threads):
    torch.set_num_threads(threads)
    out = torch.from_numpy(load_file(output_file)["output"])
    t, found = time_cluster(clusterer(out.shape[1], out.shape[2]), out, runs)
    return {"forward": 0.0, "cluster": t, "instances": found, "peak_rss_mb": peak_rss_mb()}


def predict(weights, image_file, runs, threads):
    """EmbedSeg's test pipeline for one image: forward in eval mode, then
    Cluster.cluster on the output (no TTA)."""
    torch.set_num_threads(threads)
    net = model()
    if weights != "-":
        sd = {k: torch.from_numpy(v) for k, v in load_file(weights).items()}
        net.load_state_dict(sd, strict=False)
    net.eval()
    x = torch.from_numpy(load_file(image_file)["image"])
    cl = clusterer(x.shape[2], x.shape[3])
    fwd, clu, found = [], [], 0
    with torch.no_grad():
        for i in range(runs + 1):
            t0 = time.perf_counter()
            out = net(x)[0]
            t1 = time.perf_counter()
            inst = cl.cluster(out, n_sigma=2, seed_thresh=SEED_THRESH, fg_thresh=FG_THRESH,
                              min_object_size=MIN_OBJECT_SIZE)
            t2 = time.perf_counter()
            if i > 0:
                fwd.append(t1 - t0)
                clu.append(t2 - t1)
            found = len(np.unique(inst.numpy())) - 1
    return {"forward": float(np.median(fwd)), "cluster": float(np.median(clu)),
            "instances": found, "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    import contextlib
    import io

    what = sys.argv[1]
    with contextlib.redirect_stdout(io.StringIO()):  # EmbedSeg prints as it builds
        if what == "train":
            r = train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        elif what == "cluster":
            r = cluster(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        elif what == "predict":
            r = predict(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        else:
            r = infer(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    print(json.dumps({k: float(v) for k, v in r.items()}))
