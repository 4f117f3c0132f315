#!/usr/bin/env bash
# Creates the PyTorch/EmbedSeg reference environment used to produce the
# committed fixtures and the side-by-side timings. Never needed by CI or by esx.
#   bash tools/reference/setup.sh [VENV]      (default ~/refenv)
set -euo pipefail
venv=${1:-$HOME/refenv}
python3 -m venv "$venv"
# EmbedSeg 0.2.5 calls tifffile.imsave and old scipy.ndimage paths: older pins.
"$venv/bin/pip" install -q "embedseg==0.2.5" torch torchvision "numpy<2" "scipy<1.12" \
    "scikit-image<0.23" "tifffile==2023.12.9" safetensors py-ctcmetrics stardist
# stardist and py-ctcmetrics pull numpy 2; EmbedSeg's scikit-image needs numpy 1.
"$venv/bin/pip" install -q "numpy<2"
echo "reference environment ready: $venv/bin/python"
