"""Writes the EmbedSeg 3D reference fixtures (issue 32) that esx's 3D model
and loss will be matched against: tests/fixtures/embedseg3d/.

Run by hand (never by CI or esx):
    bash tools/reference/setup.sh && ~/refenv/bin/python tools/reference/make_fixtures_3d.py

Everything is computed in float64 by EmbedSeg 0.2.5's own BranchedERFNet_3d
(num_classes [6, 1]: 3 offsets, 3 sigmas, 1 seed) and SpatialEmbLoss_3d
with the anisotropic grid its create_configs builds. Weights are stored as
uint8 codes q with a per-tensor affine map w = offset + scale·q (exact in
float64 on both sides), as the 2D fixtures are (make_fixtures.py).

model_weights_u8.safetensors   the codes; reference.json has the maps
model_outputs.safetensors      (float32) input (2, 1, 16, 24, 32); out_eval;
                               out_train (dropout off) and r; grad.NAME of
                               (out_train · r).sum() for chosen parameters;
                               after.NAME: BN running stats after that pass
loss.safetensors               prediction (2, 7, 12, 20, 16), labels,
                               centers, grad_total; reference.json has
                               each term's value
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures  # noqa: E402  (installs EmbedSeg's import shim and the float64 lovasz_grad)

from EmbedSeg.criterions.my_loss_3d import SpatialEmbLoss_3d  # noqa: E402
from EmbedSeg.models.BranchedERFNet_3d import BranchedERFNet_3d  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "embedseg3d")
ANISOTROPY = 2.0
# create_configs' 3D defaults: the grid the loss and clustering use.
N_Z, N_Y, N_X = 32, 1024, 1024
rng = np.random.default_rng(3)
torch.manual_seed(3)
torch.set_num_threads(2)


def bounds(name, t, state):
    """The range a tensor's codes map to: BN statistics near identity,
    weights and biases ±1/sqrt(fan-in)."""
    if name.endswith("running_var") or name.endswith("bn.weight") or ".bn1.weight" in name or ".bn2.weight" in name:
        return 0.5, 1.5
    if name.endswith("running_mean"):
        return -0.2, 0.2
    w = t if t.dim() == 5 else state[name[: -len("bias")] + "weight"]
    fan_in = int(np.prod(w.shape[1:])) if w.dim() == 5 else 16
    bound = 1.0 / np.sqrt(fan_in)
    return -bound, bound


def model_fixture():
    net = BranchedERFNet_3d(num_classes=[6, 1], input_channels=1).double()
    codes, maps = {}, {}
    state = net.state_dict()
    with torch.no_grad():
        for name, t in state.items():
            if name.endswith("num_batches_tracked"):
                continue
            lo, hi = bounds(name, t, state)
            q = rng.integers(0, 256, size=tuple(t.shape), dtype=np.uint8)
            maps[name] = [lo, (hi - lo) / 255.0]
            codes[name] = q
            t.copy_(torch.from_numpy(lo + maps[name][1] * q.astype(np.float64)))
    # Sides that differ on every axis, so a transposed axis cannot pass.
    x = rng.standard_normal((2, 1, 16, 24, 32)).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64))

    chosen = [
        "encoder.initial_block.conv.weight",
        "encoder.initial_block.bn.weight",
        "encoder.layers.1.conv3x1x1_1.weight",
        "encoder.layers.1.conv1x1x3_2.weight",
        "encoder.layers.10.conv1x3x1_2.weight",
        "encoder.layers.14.bn2.weight",
        "decoders.0.layers.0.conv.weight",
        "decoders.0.layers.3.conv.weight",  # (its bias feeds a train-mode BN: zero gradient)
        "decoders.0.output_conv.weight",
        "decoders.0.output_conv.bias",
        "decoders.1.layers.4.conv3x1x1_1.weight",
        "decoders.1.output_conv.weight",
    ]
    kept = ["initial_block", "layers.14", "decoders.1.layers.3"]
    out_eval, out_train, r, grads, after = make_fixtures.outputs_and_grads(
        net, xt, torch.nn.Dropout3d, chosen, kept, rng
    )
    save_file(codes, os.path.join(OUT, "model_weights_u8.safetensors"))
    # float32 keeps 7 digits, more than a float32 model can be held to,
    # at half the size.
    arrays = {"out_eval": out_eval, "out_train": out_train, "r": r, **grads, **after}
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    save_file({"input": x, **arrays}, os.path.join(OUT, "model_outputs.safetensors"))
    return maps


def instance_targets(n, d, h, w):
    """Ellipsoids (some touching along z; one without a marked centre)."""
    labels = np.zeros((n, d, h, w), np.int64)
    centers = np.zeros((n, d, h, w), bool)
    zz, yy, xx = np.mgrid[0:d, 0:h, 0:w]
    for b in range(n):
        for k in range(4):
            c = rng.uniform([3, 5, 4], [d - 3, h - 5, w - 4])
            r = rng.uniform([2, 3, 3], [4, 7, 6])
            inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((zz, yy, xx), c, r)) <= 1
            labels[b][inside] = 5 * k + 3
        for idx in np.unique(labels[b])[1:-1]:  # the last instance keeps no centre
            zs, ys, xs = np.nonzero(labels[b] == idx)
            i = len(zs) // 2
            centers[b, zs[i], ys[i], xs[i]] = True
    return labels, centers


def loss_fixture():
    n, d, h, w = 2, 12, 20, 16
    labels, centers = instance_targets(n, d, h, w)
    pred = np.concatenate(
        [
            rng.normal(0, 0.01, (n, 3, d, h, w)),
            rng.normal(0.45, 0.08, (n, 3, d, h, w)),
            rng.normal(0, 1, (n, 1, d, h, w)),
        ],
        1,
    )
    pixel_z = (N_Z - 1) / (N_X - 1) * ANISOTROPY  # create_configs' l_z
    crit = SpatialEmbLoss_3d(
        grid_z=N_Z, grid_y=N_Y, grid_x=N_X, pixel_z=pixel_z, pixel_y=1, pixel_x=1, n_sigma=3, foreground_weight=10
    ).double()
    # The same grid in float64 (its float32 linspace would put float32
    # rounding into a float64 reference).
    shape = (1, N_Z, N_Y, N_X)
    xm = torch.linspace(0, 1, N_X, dtype=torch.float64).view(1, 1, 1, -1).expand(*shape)
    ym = torch.linspace(0, 1, N_Y, dtype=torch.float64).view(1, 1, -1, 1).expand(*shape)
    zm = torch.linspace(0, pixel_z, N_Z, dtype=torch.float64).view(1, -1, 1, 1).expand(*shape)
    crit.xyzm = torch.cat((xm, ym, zm), 0)
    inst = torch.from_numpy(labels)
    lab = torch.from_numpy((labels > 0).astype(np.int64))
    ctr = torch.from_numpy(centers)
    terms, grad = make_fixtures.loss_terms(crit, pred, inst, lab, ctr)
    save_file(
        {
            "prediction": pred,
            "labels": labels.astype(np.uint32),
            "centers": centers.astype(np.uint32),
            "grad_total": grad,
        },
        os.path.join(OUT, "loss.safetensors"),
    )
    return terms


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    maps = model_fixture()
    meta = {
        "source": "embedseg 0.2.5 (BranchedERFNet_3d, SpatialEmbLoss_3d), torch " + torch.__version__,
        "anisotropy": ANISOTROPY,
        "grid": [N_Z, N_Y, N_X],
        "weight_maps": maps,
        "loss": loss_fixture(),
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("fixtures written to", os.path.abspath(OUT))
