#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs on a machine without a
# CUDA toolkit or GPU: nvcc and its parts from NVIDIA's PyPI wheels (CUDA
# 13.0, which the H200 machines' driver 580 runs), laid out as a toolkit
# root. Prints the environment to export (or: eval "$(tools/cuda/setup.sh)").
# No CUDA library is needed to build: esx loads them at run time.
#   tools/cuda/setup.sh [PREFIX]      (default ~/.cache/esx-cuda)
set -euo pipefail
prefix="${1:-$HOME/.cache/esx-cuda}"
version="${ESX_CUDA_WHEELS:-13.0}"
venv="$prefix/venv"
root="$prefix/toolkit"
if [ ! -x "$root/bin/nvcc" ]; then
    python3 -m venv "$venv" >&2
    case "$version" in
        13.0) pins=("nvidia-cuda-nvcc==13.0.88.*" "nvidia-nvvm==13.0.88.*" "nvidia-cuda-crt==13.0.88.*"
                    "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cccl==13.0.85.*") ;;
        *) echo "ESX_CUDA_WHEELS=$version: only 13.0 is pinned here" >&2; exit 1 ;;
    esac
    "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}" >&2
    cu="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
    mkdir -p "$root"
    for d in bin include nvvm lib; do ln -sfn "$cu/$d" "$root/$d"; done
    ln -sfn "$cu/lib" "$root/lib64"
fi
"$root/bin/nvcc" --version | tail -1 >&2
echo "export CUDA_HOME=$root"
echo "export PATH=$root/bin:\$PATH"
echo "export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}"
