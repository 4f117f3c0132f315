"""Writes the EmbedSeg reference fixtures that esx's Rust tests compare against.

Run by hand (never by CI or esx):
    bash tools/reference/setup.sh && ~/refenv/bin/python tools/reference/make_fixtures.py

Everything is computed in float64 by EmbedSeg 0.2.5's own BranchedERFNet,
SpatialEmbLoss and lovasz_hinge, and torch.optim.Adam. Weights are stored as
uint8 codes q with a per-tensor affine map w = offset + scale·q (exact in
float64 on both sides), which keeps the fixture at ~2 MB.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
import embedseg_import  # noqa: E402

embedseg_import.install()
import EmbedSeg.criterions.lovasz_losses as lovasz_losses  # noqa: E402
from EmbedSeg.criterions.my_loss import SpatialEmbLoss  # noqa: E402
from EmbedSeg.models.BranchedERFNet import BranchedERFNet  # noqa: E402


def lovasz_grad_f64(gt_sorted):
    """EmbedSeg's lovasz_grad with .double() for .float(): its weights are
    computed in float32, which a float64 reference cannot mix."""
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts.double() - gt_sorted.double().cumsum(0)
    union = gts.double() + (1 - gt_sorted.double()).cumsum(0)
    jaccard = 1.0 - intersection / union
    if p > 1:
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


lovasz_losses.lovasz_grad = lovasz_grad_f64

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "embedseg")
torch.manual_seed(0)
rng = np.random.default_rng(0)
torch.set_num_threads(2)


def quantize(t, lo, hi):
    """u8 codes and the (offset, scale) that decode them exactly."""
    q = rng.integers(0, 256, size=tuple(t.shape), dtype=np.uint8)
    scale = (hi - lo) / 255.0
    return q, [lo, scale]


def model_fixture():
    net = BranchedERFNet(num_classes=[4, 1], input_channels=1).double()
    codes, maps = {}, {}
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                lo, hi = 0.5, 1.5
            elif name.endswith("running_mean"):
                lo, hi = -0.2, 0.2
            elif name.endswith("bn.weight") or ".bn1.weight" in name or ".bn2.weight" in name:
                lo, hi = 0.5, 1.5
            else:
                fan_in = t.shape[1] * t.shape[2] * t.shape[3] if t.dim() == 4 else None
                if fan_in is None:  # a bias: its layer's weight has the fan-in
                    w = net.state_dict()[name[: -len("bias")] + "weight"]
                    fan_in = w.shape[1] * w.shape[2] * w.shape[3] if w.dim() == 4 else 16
                bound = 1.0 / np.sqrt(fan_in)
                lo, hi = -bound, bound
            q, m = quantize(t, lo, hi)
            codes[name], maps[name] = q, m
            t.copy_(torch.from_numpy(m[0] + m[1] * q.astype(np.float64)))
    x = rng.standard_normal((2, 1, 64, 64)).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64))

    chosen = [
        "encoder.initial_block.conv.weight",
        "encoder.initial_block.bn.weight",
        "encoder.layers.1.conv3x1_1.weight",
        "encoder.layers.10.conv3x1_2.bias",  # a bias feeding a train-mode BN has zero gradient: not this one
        "encoder.layers.14.bn2.weight",
        "decoders.0.layers.3.conv.weight",
        "decoders.0.output_conv.weight",
        "decoders.0.output_conv.bias",
        "decoders.1.layers.4.conv1x3_1.weight",
        "decoders.1.output_conv.weight",
    ]
    kept = ["initial_block", "layers.14", "decoders.1.layers.5"]
    out_eval, out_train, r, grads, after = outputs_and_grads(net, xt, torch.nn.Dropout2d, chosen, kept, rng)
    save_file(codes, os.path.join(OUT, "model_weights_u8.safetensors"))
    save_file(
        {"input": x, "out_eval": out_eval, "out_train": out_train, "r": r, **grads, **after},
        os.path.join(OUT, "model_outputs.safetensors"),
    )
    return maps


def outputs_and_grads(net, xt, dropout, chosen, kept, rng):
    """The net's output in eval mode; in train mode with `dropout` layers
    off (random masks cannot be matched), its output, a random r, the
    gradients of (output · r).sum() for the `chosen` parameters (grad.NAME)
    and the running statistics of the modules named in `kept` after that
    pass (after.NAME). All as numpy arrays."""
    net.eval()
    with torch.no_grad():
        out_eval = net(xt).numpy()
    net.train()
    for m in net.modules():
        if isinstance(m, dropout):
            m.p = 0.0
    out_train = net(xt)
    r = torch.from_numpy(rng.standard_normal(tuple(out_train.shape)))
    (out_train * r).sum().backward()
    params = dict(net.named_parameters())
    grads = {f"grad.{n}": params[n].grad.numpy() for n in chosen}
    after = {
        f"after.{n}": t.numpy()
        for n, t in net.state_dict().items()
        if "running" in n and any(k in n for k in kept)
    }
    return out_eval, out_train.detach().numpy(), r.numpy(), grads, after


def loss_terms(crit, pred, inst, lab, ctr):
    """Each term of `crit` alone and the total (weights 1, 10, 1) on a copy
    of `pred`, and the total's gradient."""
    terms = {}
    for term, ws in {"instance": (1, 0, 0), "var": (0, 1, 0), "seed": (0, 0, 1), "total": (1, 10, 1)}.items():
        p = torch.from_numpy(pred.copy()).requires_grad_(True)
        loss = crit(p, inst, lab, ctr, w_inst=ws[0], w_var=ws[1], w_seed=ws[2])
        loss.backward()
        terms[term] = float(loss)
        if term == "total":
            grad = p.grad.numpy()
    return terms, grad


def instance_targets(n, h, w):
    """Ellipses (some touching, one with a marked centre, one without)."""
    labels = np.zeros((n, h, w), np.int64)
    centers = np.zeros((n, h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for b in range(n):
        for k in range(5):
            cy, cx = rng.uniform(8, h - 8), rng.uniform(8, w - 8)
            ry, rx = rng.uniform(4, 11, size=2)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            labels[b][inside] = 3 * k + 2
        for idx in np.unique(labels[b])[1:-1]:  # the last instance keeps no centre
            ys, xs = np.nonzero(labels[b] == idx)
            i = len(ys) // 2
            centers[b, ys[i], xs[i]] = True
    return labels, centers


def loss_fixture(n_sigma, tag):
    n, h, w = 2, 48, 40
    labels, centers = instance_targets(n, h, w)
    pred = np.concatenate(
        [
            rng.normal(0, 0.01, (n, 2, h, w)),
            rng.normal(0.45, 0.08, (n, n_sigma, h, w)),
            rng.normal(0, 1, (n, 1, h, w)),
        ],
        1,
    )
    crit = SpatialEmbLoss(grid_y=1024, grid_x=1024, pixel_y=1, pixel_x=1, n_sigma=n_sigma, foreground_weight=10).double()
    # The same grid EmbedSeg builds, but with linspace in float64: its float32
    # buffer would put float32 rounding into a float64 reference.
    xm = torch.linspace(0, 1, 1024, dtype=torch.float64).view(1, 1, -1).expand(1, 1024, 1024)
    ym = torch.linspace(0, 1, 1024, dtype=torch.float64).view(1, -1, 1).expand(1, 1024, 1024)
    crit.xym = torch.cat((xm, ym), 0)
    inst = torch.from_numpy(labels)
    lab = torch.from_numpy((labels > 0).astype(np.int64))
    ctr = torch.from_numpy(centers)
    terms, grad = loss_terms(crit, pred, inst, lab, ctr)
    save_file(
        {
            "prediction": pred,
            "labels": labels.astype(np.uint32),
            "centers": centers.astype(np.uint32),
            "grad_total": grad,
        },
        os.path.join(OUT, f"loss_{tag}.safetensors"),
    )
    return terms


def adam_fixture():
    w0 = rng.standard_normal(10)
    grads = rng.standard_normal((5, 10))
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = torch.optim.Adam([p], lr=5e-4, weight_decay=1e-4)
    for g in grads:
        opt.zero_grad()
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    return {"w0": w0.tolist(), "grads": grads.tolist(), "after": p.detach().numpy().tolist(), "lr": 5e-4, "weight_decay": 1e-4}


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    maps = model_fixture()
    meta = {
        "source": "embedseg 0.2.5 (BranchedERFNet, SpatialEmbLoss), torch " + torch.__version__,
        "weight_maps": maps,
        "loss_n_sigma_2": loss_fixture(2, "n_sigma_2"),
        "loss_n_sigma_1": loss_fixture(1, "n_sigma_1"),
        "adam": adam_fixture(),
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("fixtures written to", os.path.abspath(OUT))
