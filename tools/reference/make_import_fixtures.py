"""Writes the fixtures of `esx import` (issue 31), run by hand, never by CI:
    ~/refenv/bin/python tools/reference/make_import_fixtures.py

best_iou_model.pth: an EmbedSeg 0.2.5 BranchedERFNet (2D, n_sigma 2), float32,
  saved by EmbedSeg's own train.save_checkpoint with the state its training
  loop builds (epoch, best_iou, model_state_dict, optim_state_dict,
  logger_data). The weights are random values on 16 levels per tensor (the
  file compresses in git); the optimiser took one Adam step on one tensor, so
  its state holds tensors the importer must pass over.
outputs.safetensors: a fixed input (1×1×64×96) and the model's eval-mode
  output on it, computed by PyTorch in float32.
other_arch.pth: the same checkpoint layout holding a small other network, its
  keys prefixed `module.` as torch.nn.DataParallel saves them.
calls_a_function.pth: a zip torch.save wrote whose pickle calls os.system
  (importing it must refuse it, never run it).
"""
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
import embedseg_import  # noqa: E402

embedseg_import.install()
from EmbedSeg.models.BranchedERFNet import BranchedERFNet  # noqa: E402
from EmbedSeg.train import save_checkpoint  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "import")
rng = np.random.default_rng(31)
torch.manual_seed(31)
torch.set_num_threads(2)


def levels(t, lo, hi):
    q = rng.integers(0, 16, size=tuple(t.shape)).astype(np.float64)
    return torch.from_numpy(lo + (hi - lo) / 15.0 * q).to(t.dtype)


def embedseg_model():
    net = BranchedERFNet(num_classes=[4, 1], input_channels=1)
    net.init_output(2)
    sd = net.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if name.endswith("num_batches_tracked"):
                t.fill_(123)
            elif name.endswith("running_var"):
                t.copy_(levels(t, 0.5, 1.5))
            elif name.endswith("running_mean"):
                t.copy_(levels(t, -0.2, 0.2))
            elif t.dim() == 1 and ("bn" in name):
                t.copy_(levels(t, 0.5, 1.5) if name.endswith("weight") else levels(t, -0.1, 0.1))
            else:
                w = sd[name[: -len("bias")] + "weight"] if name.endswith("bias") else t
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                bound = 1.0 / np.sqrt(fan_in)
                t.copy_(levels(t, -bound, bound))
    return net


def save_like_embedseg(net, optimizer, path, epoch, best_iou):
    state = {
        "epoch": epoch,
        "best_iou": best_iou,
        "model_state_dict": net.state_dict(),
        "optim_state_dict": optimizer.state_dict(),
        "logger_data": {"train": [0.9, 0.7], "val": [0.8, 0.75], "iou": [0.4, best_iou]},
    }
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(state, True, epoch, save_dir=d, save_checkpoint_frequency=None)
        shutil.copyfile(os.path.join(d, "best_iou_model.pth"), path)


def main():
    os.makedirs(OUT, exist_ok=True)
    net = embedseg_model()
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, weight_decay=1e-4)
    # one step that touches one tensor: Adam keeps state (tensors) for it
    net.decoders[1].output_conv.bias.sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    net.decoders[1].output_conv.bias.data.copy_(torch.tensor([0.25]))
    save_like_embedseg(net, optimizer, os.path.join(OUT, "best_iou_model.pth"), 7, 0.625)

    x = rng.standard_normal((1, 1, 64, 96)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x)).numpy()
    save_file({"input": x, "out_eval": out}, os.path.join(OUT, "outputs.safetensors"))

    other = torch.nn.DataParallel(
        torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    )
    save_like_embedseg(other, torch.optim.Adam(other.parameters()), os.path.join(OUT, "other_arch.pth"), 3, 0.5)

    class CallsAFunction:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    torch.save({"epoch": 1, "model_state_dict": CallsAFunction()}, os.path.join(OUT, "calls_a_function.pth"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
