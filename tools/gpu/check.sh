#!/usr/bin/env bash
# The GPU check: everything a GPU machine has to show, in one go, printing
# every figure (issue 13). Run from the repository root on the GPU machine:
#   bash tools/gpu/check.sh [ESX] [PYTHON]
# ESX: a CUDA build (tools/gpu/build.sh makes target/gpu/esx). PYTHON: an
# interpreter with torch, for EmbedSeg 0.2.5 side by side (default: the
# machine's /opt/torch/.venv, if there). Each section has a time limit;
# the whole stays under 8 minutes on an H200.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
esx="$(realpath "${1:-$root/target/gpu/esx}")"
python="${2:-/opt/torch/.venv/bin/python}"
work="$(mktemp -d)"
failures=0
start=$SECONDS

section() { echo; echo "== $1   [$(( SECONDS - start )) s]"; }
# run LIMIT CMD…: run with a time limit; a failure is counted, not fatal.
run() {
    local limit=$1; shift
    echo "\$ $*"
    timeout "$limit" "$@"
    local rc=$?
    if [ $rc -ne 0 ]; then echo "!! exit status $rc"; failures=$((failures + 1)); fi
    return $rc
}
# refuse CMD…: must fail with exactly one line on stderr.
refuse() {
    echo "\$ $*"
    local err
    err="$("$@" 2>&1 >/dev/null)"
    local rc=$?
    echo "$err"
    if [ $rc -eq 0 ] || [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
        echo "!! expected a failure on one line"; failures=$((failures + 1))
    fi
}

section "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
nvidia-smi | head -4 | tail -2
# The CUDA libraries esx loads: the driver's libcuda, and cuBLAS, cuRAND,
# NVRTC from the PyTorch environment's NVIDIA wheels.
if [ -x "$python" ]; then
    nv="$("$python" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)"
    if [ -n "$nv" ]; then
        libs="$(find "$nv" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
        export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
fi
for lib in libcuda.so.1 libcublas.so libcublasLt.so libcurand.so libnvrtc.so; do
    found="$( (ldconfig -p | grep -o "/[^ ]*$lib[^ ]*" ; tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}" | while read -r d; do ls "$d"/$lib* 2>/dev/null; done) | head -1)"
    echo "$lib: ${found:-NOT FOUND}"
done
run 10 "$esx" --version
export RUST_BACKTRACE=1   # errors must stay one line even so

section "parity: cuda:0 against the fused CPU ops (same weights and batch)"
run 120 "$esx" bench parity --device cuda:0 --batch 2 --size 128 --dtype f64,f32
run 120 "$esx" bench parity --device cuda:0 --batch 4 --size 256 --dtype f32

section "quickstart on cuda:0 (2 epochs), then eval and predict from its store"
cd "$work"
cp -r "$root/experiments" .
run 240 "$esx" run experiments/quickstart.toml device=cuda:0 epochs=2 --json > run.json
cat run.json
id="$(python3 -c 'import json; print(json.load(open("run.json"))["id"])' 2>/dev/null)"
run 30 "$esx" ls
run 30 "$esx" show "$id"
run 60 "$esx" synth data/fluo-test --seed 99 --quiet
run 120 "$esx" eval "$id" data/fluo-test --device cuda:0
run 120 "$esx" predict "$id" data/fluo-test/01 --out masks --device cuda:0
ls masks | head -3; echo "$(ls masks | wc -l) masks"

section "sweep with --gpus 0, two points"
run 240 "$esx" sweep experiments/quickstart.toml lr=1e-3,5e-4 epochs=1 --gpus 0 --jobs 2

section "bad input: each one line, nothing left running"
refuse "$esx" run experiments/quickstart.toml device=cuda:7
refuse "$esx" sweep experiments/quickstart.toml lr=1e-3,5e-4 --gpus 0,1
run 30 "$esx" ls

section "benchmarks: training and inference on cuda:0 (EmbedSeg 0.2.5 beside, where torch is)"
torch=()
if [ -x "$python" ] && "$python" -c 'import torch' 2>/dev/null; then
    export PYTHONPATH="$root/target/gpu/embedseg${PYTHONPATH:+:$PYTHONPATH}"
    torch=(--torch "$python" --torch-script "$root/tools/reference/bench_torch.py")
else
    echo "no PyTorch at $python: esx's figures only"
fi
run 300 "$esx" bench train --device cuda:0 --train 2x256,16x256,8x512 --infer 1x2048 \
    --steps 10 --rounds 1 "${torch[@]}"

section "done in $(( SECONDS - start )) s: $failures failure(s)"
exit $((failures > 0))
