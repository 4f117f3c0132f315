"""Reference values for esx's metrics on volumes (3D instance masks),
computed by independent implementations: StarDist's `matching` /
`matching_dataset` (n-dimensional) and py-ctcmetrics' SEG on 3D TIFF stacks,
as the CTC evaluation reads them. The same layout as make_metric_fixtures.py
writes for 2D. Run by hand:

    ~/refenv/bin/python tools/reference/make_metric_fixtures_3d.py
"""
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_metric_fixtures import write_fixtures  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "metrics3d")
rng = np.random.default_rng(3)
SHAPE = (12, 40, 48)


def ellipsoids(n):
    lab = np.zeros(SHAPE, np.uint32)
    zz, yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]]
    for k in range(n):
        c = [rng.uniform(2, SHAPE[0] - 2), rng.uniform(4, SHAPE[1] - 4), rng.uniform(4, SHAPE[2] - 4)]
        r = [rng.uniform(1.5, 4), rng.uniform(3, 9), rng.uniform(3, 9)]
        inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((zz, yy, xx), c, r)) <= 1
        lab[inside] = 5 * k + 2  # non-contiguous ids
    return lab


def perturb(t):
    """Typical faults in 3D: grown, shrunk, shifted along any axis, split in z, missed, merged, spurious."""
    p = np.zeros_like(t)
    for n, i in enumerate(i for i in np.unique(t) if i):
        m = t == i
        r = rng.uniform()
        if r < 0.12:
            continue
        if r < 0.3:
            m = ndimage.binary_dilation(m, iterations=1)
        elif r < 0.45:
            m = ndimage.binary_erosion(m, iterations=1)
        elif r < 0.6:
            m = np.roll(m, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))
        elif r < 0.7:  # split between planes
            zs = np.nonzero(m)[0]
            mid = int(np.median(zs)) if len(zs) else 0
            low = m.copy()
            low[mid:] = False
            p[m & ~low] = 200 + n
            m = low
        p[m & (p == 0)] = 13 * n + 1
    ids = [i for i in np.unique(p) if i]
    if len(ids) >= 2:
        p[p == ids[1]] = ids[0]
    zz, yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1], 0:SHAPE[2]]
    p[((zz - 2) ** 2 + (yy - 5) ** 2 + (xx - 42) ** 2) <= 6] = 250
    return p


def main():
    pairs = []
    for _ in range(4):
        t = ellipsoids(int(rng.integers(5, 12)))
        pairs.append((t, perturb(t)))
    pairs.append((ellipsoids(4), np.zeros(SHAPE, np.uint32)))
    pairs.append((pairs[0][0], pairs[0][0].copy()))
    # ids stay under 256, so the labels are stored as uint8 (a quarter the size).
    write_fixtures(pairs, OUT, "stardist.matching + py-ctcmetrics, 3D", dtype=np.uint8)


if __name__ == "__main__":
    main()
