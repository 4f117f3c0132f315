"""Times EmbedSeg 0.2.5's own BranchedERFNet and SpatialEmbLoss in PyTorch
(CPU), for `esx bench train --torch PYTHON`, which calls this once per shape
and prints both sides. Never needed by CI or by esx itself.

    python bench_torch.py train BATCH_FILE STEPS THREADS
    python bench_torch.py infer N SIZE RUNS THREADS

BATCH_FILE is a safetensors file written by esx (images [B,1,S,S], labels and
centers [B,S,S]), so both sides time the same batch. Prints one JSON line.
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
    inst = torch.from_numpy(b["labels"].astype(np.int64))
    lab = (inst > 0).long()
    ctr = torch.from_numpy(b["centers"] > 0)
    net = model().train()
    crit = SpatialEmbLoss(n_sigma=2, foreground_weight=10)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4, weight_decay=1e-4)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        out = net(x)
        t1 = time.perf_counter()
        loss = crit(out, inst, lab, ctr, w_inst=1, w_var=10, w_seed=1)
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        opt.step()
        t3 = time.perf_counter()
        if i > 0:
            times.append((t1 - t0, t2 - t1, t3 - t2))
    med = np.median(np.array(times), axis=0)
    return {"forward": med[0], "loss": med[1], "backward_adam": med[2], "step": float(med.sum()), "peak_rss_mb": peak_rss_mb()}


def infer(n, size, runs, threads):
    torch.set_num_threads(threads)
    net = model().eval()
    x = torch.zeros(n, 1, size, size)
    times = []
    with torch.no_grad():
        for i in range(runs + 1):
            t0 = time.perf_counter()
            net(x)
            if i > 0:
                times.append(time.perf_counter() - t0)
    return {"forward": float(np.median(times)), "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    import contextlib
    import io

    what = sys.argv[1]
    with contextlib.redirect_stdout(io.StringIO()):  # EmbedSeg prints as it builds
        if what == "train":
            r = train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        else:
            r = infer(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    print(json.dumps({k: float(v) for k, v in r.items()}))
