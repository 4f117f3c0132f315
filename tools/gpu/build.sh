#!/usr/bin/env bash
# Builds what a GPU check needs into target/gpu/ (git-ignored; carry that
# folder to the GPU machine, which has no Rust toolchain):
#   target/gpu/esx        the CUDA build, stripped (CUDA 13.0 PTX for sm_90:
#                         H100/H200; CUDA_COMPUTE_CAP=80 for A100 and newer)
#   target/gpu/embedseg/  EmbedSeg 0.2.5's modules, for PyTorch's side-by-side
# Then, there: bash tools/gpu/check.sh target/gpu/esx
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(tools/cuda/setup.sh "${ESX_CUDA_PREFIX:-$HOME/.cache/esx-cuda}")"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda
mkdir -p target/gpu
objcopy --strip-all target/cuda/release/esx target/gpu/esx
if [ ! -d target/gpu/embedseg/criterions ]; then
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps "embedseg==0.2.5" -d "$tmp"
    rm -rf target/gpu/embedseg
    python3 -m zipfile -e "$tmp"/embedseg-0.2.5-py3-none-any.whl target/gpu/embedseg
fi
du -sh target/gpu/esx target/gpu/embedseg
