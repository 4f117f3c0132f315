"""Writes reference values for esx's segmentation metrics, computed by
independent implementations: StarDist's `matching` / `matching_dataset`
(the AP EmbedSeg reports) and py-ctcmetrics' SEG. Run by hand:

    ~/refenv/bin/pip install py-ctcmetrics stardist
    ~/refenv/bin/python tools/reference/make_metric_fixtures.py
"""
import json
import os
import tempfile

import numpy as np
import tifffile
from safetensors.numpy import save_file
from scipy import ndimage
import stardist.matching as stardist_matching
from stardist.matching import matching, matching_dataset
from ctc_metrics.metrics import seg
from ctc_metrics.utils.representations import match



def _safe_divide_f64(x, y, eps=1e-10):
    """StarDist's _safe_divide, with a float64 output array: its float32 one
    rounds every IoU to float32, which an exact comparison cannot follow."""
    if np.isscalar(x) and np.isscalar(y):
        return x / y if np.abs(y) > eps else 0.0
    out = np.zeros(np.broadcast(x, y).shape, np.float64)
    np.divide(x, y, out=out, where=np.abs(y) > eps)
    return out


stardist_matching._safe_divide = _safe_divide_f64

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "metrics")
rng = np.random.default_rng(1)
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]


def ellipses(n, size=96):
    lab = np.zeros((size, size), np.uint32)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(n):
        cy, cx = rng.uniform(6, size - 6, 2)
        ry, rx = rng.uniform(3, 12, 2)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        lab[(u / rx) ** 2 + (v / ry) ** 2 <= 1] = 7 * k + 3  # non-contiguous ids
    return lab


def perturb(t):
    """A prediction with typical faults: grown, shrunk, merged, split, missed, spurious, shifted."""
    p = np.zeros_like(t)
    ids = [i for i in np.unique(t) if i]
    for n, i in enumerate(ids):
        m = t == i
        r = rng.uniform()
        if r < 0.12:
            continue  # missed
        if r < 0.3:
            m = ndimage.binary_dilation(m, iterations=int(rng.integers(1, 4)))
        elif r < 0.45:
            m = ndimage.binary_erosion(m, iterations=int(rng.integers(1, 3)))
        elif r < 0.55:
            m = np.roll(m, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
        elif r < 0.65:  # split along its middle row
            ys, _ = np.nonzero(m)
            mid = int(np.median(ys)) if len(ys) else 0
            top = m.copy()
            top[mid:] = False
            p[m & ~top] = 1000 + n
            m = top
        p[m & (p == 0)] = 11 * n + 5
    # A merge of the first two predicted objects, and a spurious blob.
    pids = [i for i in np.unique(p) if i]
    if len(pids) >= 2:
        p[p == pids[1]] = pids[0]
    yy, xx = np.mgrid[0:t.shape[0], 0:t.shape[1]]
    p[((yy - 8) ** 2 + (xx - 88) ** 2) <= 16] = 4242
    return p


def main():
    os.makedirs(OUT, exist_ok=True)
    pairs = []
    for k in range(6):
        t = ellipses(int(rng.integers(6, 16)))
        pairs.append((t, perturb(t)))
    pairs.append((ellipses(5), np.zeros((96, 96), np.uint32)))  # nothing predicted
    pairs.append((np.zeros((96, 96), np.uint32), ellipses(3)))  # nothing true
    pairs.append((pairs[0][0], pairs[0][0].copy()))  # perfect
    write_fixtures(pairs, OUT, "stardist.matching + py-ctcmetrics")


def write_fixtures(pairs, out, source, dtype=np.uint32):
    """Every (truth, prediction) pair's StarDist matching at each threshold,
    pooled matching, and py-ctcmetrics' SEG from TIFF files as the CTC
    evaluation reads them (2D images or 3D stacks alike), into
    out/masks.safetensors (labels as dtype) and out/reference.json."""
    os.makedirs(out, exist_ok=True)
    tensors, frames = {}, []
    for k, (t, p) in enumerate(pairs):
        assert t.max(initial=0) <= np.iinfo(dtype).max and p.max(initial=0) <= np.iinfo(dtype).max
        tensors[f"truth_{k}"] = t.astype(dtype)
        tensors[f"pred_{k}"] = p.astype(dtype)
        per = {}
        for thr in THRESHOLDS:
            s = matching(t, p, thresh=thr)
            per[str(thr)] = {key: float(getattr(s, key)) for key in
                             ["tp", "fp", "fn", "accuracy", "precision", "recall", "f1",
                              "mean_matched_score", "mean_true_score", "panoptic_quality"]}
        frames.append(per)
    pooled = {}
    for thr in THRESHOLDS:
        s = matching_dataset([t for t, _ in pairs], [p for _, p in pairs], thresh=thr, by_image=False, show_progress=False)
        pooled[str(thr)] = {key: float(getattr(s, key)) for key in ["tp", "fp", "fn", "accuracy", "mean_matched_score"]}
    # SEG with py-ctcmetrics, from TIFF files as the CTC evaluation reads them.
    with tempfile.TemporaryDirectory() as d:
        labels_ref, ious, per_frame_seg = [], [], []
        for k, (t, p) in enumerate(pairs):
            rp, cp = os.path.join(d, f"man_seg{k:03}.tif"), os.path.join(d, f"mask{k:03}.tif")
            tifffile.imwrite(rp, t.astype(np.uint16))
            tifffile.imwrite(cp, p.astype(np.uint16))
            lr, _, _, _, iou = match(rp, cp)
            labels_ref.append(lr)
            ious.append(iou)
            per_frame_seg.append(seg([lr], [iou]))
        total_seg = seg(labels_ref, ious)
    save_file(tensors, os.path.join(out, "masks.safetensors"))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"source": source, "thresholds": THRESHOLDS,
                   "frames": frames, "pooled": pooled, "seg": total_seg, "seg_per_frame": per_frame_seg}, f, indent=1)
    print("metric fixtures written to", os.path.abspath(out), "SEG", total_seg, per_frame_seg)


if __name__ == "__main__":
    main()
