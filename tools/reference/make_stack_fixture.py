"""A 3D label stack written by tifffile as ImageJ writes hyperstacks (the
independent writer for esx's stack reader): 3 planes of 4x5 uint16 labels,
z spacing 2.5 and 0.5 um pixels (XResolution 2 per um), so anisotropy 5.

  python tools/reference/make_stack_fixture.py tests/fixtures/stack
"""
import sys
from pathlib import Path

import numpy as np
import tifffile

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
labels = np.arange(60, dtype=np.uint16).reshape(3, 4, 5) % 7
tifffile.imwrite(out / "imagej_zyx.tif", labels, imagej=True, resolution=(2.0, 2.0),
                 metadata={"spacing": 2.5, "unit": "um", "axes": "ZYX"})
np.savetxt(out / "imagej_zyx.txt", labels.reshape(-1), fmt="%d")
print(tifffile.TiffFile(out / "imagej_zyx.tif").imagej_metadata)
