"""How well a trained model's embeddings gather each annotated cell, on the
frames of a CTC dataset: a diagnosis of the benchmark, independent of esx's
code (EmbedSeg 0.2.5's network and clustering grid in PyTorch).

For every annotated cell: the spread (root mean square distance, in pixels,
along x and along y) of where its pixels' embeddings point, and the share
of the cell that the proposal of its highest-seed pixel covers (the pixels
of the foreground, seed > 0.5, whose Gaussian score at that pixel's centre
and bandwidth is over 0.5, as EmbedSeg's `Cluster.cluster` builds a
proposal). A converged model points every pixel of a cell at one place and
covers the cell with one proposal.

  python embedding_probe.py MODEL TEST_ROOT
MODEL: EmbedSeg's best_iou_model.pth, or an esx checkpoint (.safetensors,
whose tensors carry EmbedSeg's names). Prints one line per frame (medians
over its cells) and one over all cells.
"""

import sys
from glob import glob
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import embedseg_import  # noqa: E402

embedseg_import.install()
from EmbedSeg.models.BranchedERFNet import BranchedERFNet  # noqa: E402
from EmbedSeg.utils.generate_crops import normalize_min_max_percentile  # noqa: E402
from EmbedSeg.utils.utils import Cluster  # noqa: E402


def load(path):
    model = BranchedERFNet(num_classes=[4, 1], input_channels=1)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        # esx keeps no num_batches_tracked; everything else must match.
        missing, unexpected = model.load_state_dict(load_file(path), strict=False)
        assert not unexpected and all("num_batches_tracked" in k for k in missing), missing
        grid = 1024  # esx's loss grid: pixel spacing 1/1023
    else:
        state = torch.load(path, map_location="cpu")["model_state_dict"]
        model.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
        grid = None  # EmbedSeg's: n_y = n_x of its data properties
    return model.eval(), grid


def probe(model, grid, image, truth):
    h, w = image.shape
    x = torch.from_numpy(normalize_min_max_percentile(image, 1, 99.8, axis=(0, 1)).astype(np.float32))
    dy, dx = (8 - h % 8) % 8, (8 - w % 8) % 8
    x = F.pad(x[None, None], (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2), "reflect")
    with torch.no_grad():
        out = model(x)[0][:, dy // 2: dy // 2 + h, dx // 2: dx // 2 + w]
    # The grid a model was trained with: spacing 1/(n-1) over n pixels,
    # n = round_up_8 of the larger side for EmbedSeg here (its n_y, n_x).
    n = grid or (max(h, w) + 7) // 8 * 8
    side = (max(h, w) + 7) // 8 * 8
    xym = Cluster(side, side, (side - 1) / (n - 1), (side - 1) / (n - 1), "cpu").xym[:, :h, :w]
    emb = torch.tanh(out[0:2]) + xym
    sigma, seed = out[2:4], torch.sigmoid(out[4])
    fg = seed > 0.5
    rows = []
    for cell in [i for i in np.unique(truth) if i]:
        sel = torch.from_numpy(truth == cell)
        e = emb[:, sel]
        spread = (e - e.mean(1, keepdim=True)).pow(2).mean(1).sqrt() * (n - 1)
        k = seed[sel].argmax()
        centre, s = e[:, k: k + 1], torch.exp(sigma[:, sel][:, k: k + 1] * 10)
        score = torch.exp(-((emb[:, fg] - centre).pow(2) * s).sum(0))
        covered = ((score > 0.5) & sel[fg]).sum().item() / sel.sum().item()
        rows.append((spread[0].item(), spread[1].item(), covered))
    return rows


def main(model_path, root):
    torch.set_num_threads(1)
    model, grid = load(model_path)
    images = sorted(glob(f"{root}/01/t*.tif"))
    masks = sorted(glob(f"{root}/01_GT/SEG/man_seg*.tif"))
    every = []
    for im, m in zip(images, masks):
        rows = probe(model, grid, tifffile.imread(im).astype(np.float32), tifffile.imread(m))
        every += rows
        med = np.median(np.array(rows), 0)
        print(f"{Path(im).name}: {len(rows)} cells, spread x {med[0]:.1f} y {med[1]:.1f} px, "
              f"proposal covers {med[2]:.2f} of the cell (medians)")
    med = np.median(np.array(every), 0)
    print(f"all {len(every)} cells: spread x {med[0]:.1f} y {med[1]:.1f} px, proposal covers {med[2]:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
