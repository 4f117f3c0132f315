#!/usr/bin/env bash
# Builds what a GPU check needs into target/gpu/ (git-ignored; carry that
# folder to the GPU machine, which has no Rust toolchain):
#   target/gpu/esx          the CUDA build, stripped (CUDA 13.0 PTX for sm_90:
#                           H100/H200; CUDA_COMPUTE_CAP=80 for A100 and newer)
#   target/gpu/esx.needs    what it needs of a machine: the highest GLIBC
#                           symbol version and the libraries it links
#   target/gpu/embedseg/    EmbedSeg 0.2.5's modules, for PyTorch's side-by-side
# Then, there: bash tools/gpu/check.sh target/gpu/esx (see its header).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(tools/cuda/setup.sh "${ESX_CUDA_PREFIX:-$HOME/.cache/esx-cuda}")"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda
mkdir -p target/gpu
objcopy --strip-all target/cuda/release/esx target/gpu/esx
{
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
    echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, nvcc $(nvcc --version | tail -1)"
    echo "glibc of this machine: $(getconf GNU_LIBC_VERSION)"
    echo "highest GLIBC symbol the binary needs: $(objdump -T target/gpu/esx | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    echo "linked at start-up: $(objdump -p target/gpu/esx | awk '/NEEDED/ {print $2}' | paste -sd' ')"
} > target/gpu/esx.needs
if [ ! -d target/gpu/embedseg/criterions ]; then
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps "embedseg==0.2.5" -d "$tmp"
    rm -rf target/gpu/embedseg
    python3 -m zipfile -e "$tmp"/embedseg-0.2.5-py3-none-any.whl target/gpu/embedseg
fi
cat target/gpu/esx.needs
du -sh target/gpu/esx target/gpu/embedseg
du -sh --total target/gpu | tail -1
