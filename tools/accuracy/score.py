"""Scores predicted label masks against a CTC test set with code independent
of esx: AP at IoU 0.5 and averaged over 0.5:0.05:0.95 (TP / (TP + FP + FN) per
image, objects paired one-to-one by the Hungarian method as stardist and
EmbedSeg do, averaged over images), and the CTC SEG measure from py-ctcmetrics.

  python score.py GT_ROOT PRED_DIR      (GT_ROOT/01_GT/SEG/man_seg*.tif; the
                                         predictions' .tif files in name order)
prints one JSON line: {"ap50", "ap", "seg", "frames"}.
"""

import json
import sys
from pathlib import Path

import numpy as np
import tifffile
from ctc_metrics.metrics import seg
from ctc_metrics.utils.representations import match
from scipy.optimize import linear_sum_assignment

THRESHOLDS = np.arange(0.5, 0.96, 0.05)


def iou_matrix(gt, pred):
    g_ids = np.unique(gt)[1:]
    p_ids = np.unique(pred)[1:]
    if len(g_ids) == 0 or len(p_ids) == 0:
        return np.zeros((len(g_ids), len(p_ids)))
    pairs = np.stack([gt.ravel(), pred.ravel()], 1).astype(np.int64)
    both = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)]
    g_index = {g: i for i, g in enumerate(g_ids)}
    p_index = {p: j for j, p in enumerate(p_ids)}
    inter = np.zeros((len(g_ids), len(p_ids)))
    keys, counts = np.unique(both, axis=0, return_counts=True)
    for (g, p), c in zip(keys, counts):
        inter[g_index[g], p_index[p]] = c
    g_area = np.array([(gt == g).sum() for g in g_ids], float)
    p_area = np.array([(pred == p).sum() for p in p_ids], float)
    return inter / (g_area[:, None] + p_area[None, :] - inter)


def ap_at(iou, thresh):
    n_gt, n_pred = iou.shape
    if n_gt == 0 and n_pred == 0:
        return 1.0
    tp = 0
    if n_gt and n_pred:
        cost = -(iou * (iou >= thresh))
        rows, cols = linear_sum_assignment(cost)
        tp = int((iou[rows, cols] >= thresh).sum())
    return tp / (n_gt + n_pred - tp)


def main(gt_root, pred_dir):
    gts = sorted((Path(gt_root) / "01_GT" / "SEG").glob("man_seg*.tif"))
    preds = sorted(p for p in Path(pred_dir).glob("*.tif"))
    assert len(gts) == len(preds), f"{len(gts)} masks, {len(preds)} predictions in {pred_dir}"
    aps = []
    labels_ref, ious = [], []
    for g, p in zip(gts, preds):
        gt, pred = tifffile.imread(g), tifffile.imread(p)
        assert gt.shape == pred.shape, f"{p}: {pred.shape}, {g}: {gt.shape}"
        iou = iou_matrix(gt, pred)
        aps.append([ap_at(iou, t) for t in THRESHOLDS])
        ref, _, _, _, matched_iou = match(str(g), str(p))
        labels_ref.append(ref)
        ious.append(np.asarray(matched_iou, float))
    aps = np.mean(np.array(aps), 0)
    print(json.dumps({
        "ap50": round(float(aps[0]), 4),
        "ap": round(float(aps.mean()), 4),
        "seg": round(seg(labels_ref, ious), 4),
        "frames": len(gts),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
