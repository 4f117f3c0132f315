"""Writes tests/fixtures/embedseg3d/cluster.safetensors: a structured 3D
prediction and the instances EmbedSeg 0.2.5's Cluster_3d.cluster makes of
it, for esx's 3D clustering (src/infer/cluster_3d.rs) to be matched against.

Run by hand (never by CI or esx):
    ~/refenv/bin/python tools/reference/make_cluster_fixture_3d.py

The prediction (7, 12, 24, 20) holds five ellipsoids, some touching along
z, whose voxels' offsets point at their centres plus noise, with bandwidths
of a few pixels and seeds falling off from the centres; the background has
low seeds and a few bright specks. The grid is create_configs' for n_z 32,
n_y = n_x = 1024 and anisotropy 2 (z spacing = 2 × xy spacing).
params = [seed_thresh, fg_thresh, min_object_size, anisotropy].
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
import embedseg_import  # noqa: E402

embedseg_import.install()
from EmbedSeg.utils.utils import Cluster_3d  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "embedseg3d")
A = 2.0
N_Z, N_XY = 32, 1024
PIXEL = 1.0 / (N_XY - 1)
SEED_THRESH, FG_THRESH, MIN_OBJECT_SIZE = 0.9, 0.5, 20
rng = np.random.default_rng(5)

d, h, w = 12, 24, 20
zz, yy, xx = np.mgrid[0:d, 0:h, 0:w].astype(np.float64)
# centres (z, y, x) in voxels and radii (z, y, x)
cells = [((2.5, 6, 6), (2.2, 4, 4)), ((7.0, 6, 6), (2.2, 4, 4)), ((4, 16, 7), (3, 5, 4)),
         ((8, 15, 14), (3, 5, 5)), ((3, 5, 15), (2, 3, 3))]
labels = np.zeros((d, h, w), np.int64)
best = np.full((d, h, w), np.inf)
for k, (c, r) in enumerate(cells):
    rho = np.sqrt(((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2)
    inside = (rho < 1) & (rho < best)
    labels[inside] = k + 1
    best[inside] = rho[inside]

pred = np.zeros((7, d, h, w))
target = np.stack([xx, yy, zz * A])  # in xy pixels
seed_logit = rng.normal(-4, 1, (d, h, w))
sigma = np.full((3, d, h, w), np.log(1 / 12 / PIXEL**2) / 10)  # reach √(12 ln 2) ≈ 2.9 px
for k, (c, r) in enumerate(cells):
    m = labels == k + 1
    centre = np.array([c[2], c[1], c[0] * A])
    for a in range(3):
        want = centre[a] + rng.normal(0, 0.6, m.sum())
        pred[a][m] = np.arctanh((want - target[a][m]) * PIXEL)
    seed_logit[m] = 4 - 5 * best[m] + rng.normal(0, 0.3, m.sum())
    sigma[:, m] += rng.normal(0, 0.01, (3, m.sum()))
# bright specks in the background: seeds without a cell
for _ in range(6):
    z, y, x = rng.integers(0, [d, h, w])
    if labels[z, y, x] == 0:
        seed_logit[z, y, x] = 4.0
pred[3:6] = sigma
pred[6] = seed_logit
pred = pred.astype(np.float32)

cluster = Cluster_3d(N_Z, N_XY, N_XY, (N_Z - 1) / (N_XY - 1) * A, 1, 1, "cpu")
instances = cluster.cluster(torch.from_numpy(pred), n_sigma=3, seed_thresh=SEED_THRESH, fg_thresh=FG_THRESH,
                            min_object_size=MIN_OBJECT_SIZE).numpy()
print("instances:", np.unique(instances), [int((instances == i).sum()) for i in np.unique(instances)])
save_file(
    {
        "prediction": pred,
        "instances": instances.astype(np.uint32),
        "params": np.array([SEED_THRESH, FG_THRESH, MIN_OBJECT_SIZE, A], np.float64),
    },
    os.path.join(OUT, "cluster.safetensors"),
)
