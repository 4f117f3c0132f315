#!/usr/bin/env bash
# The GPU check: everything a GPU machine has to show, in one call that
# cannot waste its chance (issues 27, 28). From the repository root there:
#   bash tools/gpu/check.sh [ESX] [PYTHON]
# ESX: a CUDA build (tools/gpu/build.sh makes target/gpu/esx). PYTHON: an
# interpreter with torch, for EmbedSeg 0.2.5 side by side (default: the
# machine's /opt/torch/.venv, if there).
#
# - A global deadline (ESX_CHECK_DEADLINE, default 420 s): every command's
#   time limit is cut to what is left, sections that no longer fit are
#   skipped, and the summary always prints.
# - Sections in order of what they are worth: diagnostics, a 64×64 parity
#   smoke test, parity and the 20-step trajectory, the headline training
#   benchmark beside PyTorch, the quickstart with eval and predict, a
#   --gpus sweep, bad input, then the other shapes (8×512 last).
# - Everything goes to $OUT (or ESX_CHECK_OUT, else a temporary folder):
#   check.log (this whole output), one .jsonl per benchmark (each figure
#   as it was measured) and summary.txt. Commands are echoed to stderr.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
esx="$(realpath "${1:-$root/target/gpu/esx}")"
python="${2:-/opt/torch/.venv/bin/python}"
out="${ESX_CHECK_OUT:-${OUT:-$(mktemp -d)}}"
deadline=${ESX_CHECK_DEADLINE:-420}
mkdir -p "$out"
exec > >(tee -a "$out/check.log") 2>&1
work="$(mktemp -d)"
start=$SECONDS
failures=0
results=()   # one "status  section" line each, for the summary

left() { echo $(( deadline - (SECONDS - start) )); }
note() { results+=("$1"); }

# section NAME NEED: starts a section if NEED seconds are left, else skips it.
section() {
    local name=$1 need=$2
    echo
    if [ "$(left)" -lt "$need" ]; then
        echo "== $name   [$(( SECONDS - start )) s]  SKIPPED: $(left) s left of the deadline, $need needed"
        note "skipped   $name"
        return 1
    fi
    echo "== $name   [$(( SECONDS - start )) s, $(left) s left]"
    return 0
}

# run LIMIT CMD…: the command echoed to stderr, bounded by LIMIT and by the
# deadline; a failure is counted, not fatal.
run() {
    local limit=$1; shift
    local cap; cap=$(left)
    [ "$cap" -lt "$limit" ] && limit=$cap
    if [ "$limit" -le 0 ]; then
        echo "!! no time left: $*" >&2; failures=$((failures + 1)); return 124
    fi
    echo "\$ $* (limit ${limit} s)" >&2
    timeout -k 5 "$limit" "$@"
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "!! exit status $rc$([ $rc -eq 124 ] && echo ' (time limit)')" >&2
        failures=$((failures + 1))
    fi
    return $rc
}

# bench NAME LIMIT ARGS…: `esx bench ARGS --json`, each figure teed into
# $out/NAME.jsonl as it is measured (run stays in this shell: its count of
# failures holds).
bench() {
    local name=$1 limit=$2; shift 2
    run "$limit" "$esx" bench "$@" --json > >(tee "$out/$name.jsonl")
    local rc=$?
    sleep 0.2   # let tee write the last lines before what follows
    note "$([ "$rc" -eq 0 ] && echo "ok      " || echo "FAILED($rc)") bench $name"
    return "$rc"
}

# refuse CMD…: must fail, with exactly one line on stderr, within 30 s.
refuse() {
    echo "\$ $* (must fail with one line)" >&2
    local err rc
    err="$(timeout -k 5 30 "$@" 2>&1 >/dev/null)"
    rc=$?
    printf '%s\n' "$err"
    if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
        echo "!! expected a failure on one line (exit status $rc)" >&2
        failures=$((failures + 1)); note "FAILED    refuse: $*"
    else
        note "ok        refuse: ${*: -2}"
    fi
}

if section "machine and build" 30; then
    date -u
    uname -srm
    echo "glibc here: $(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -1)"
    [ -f "$esx.needs" ] && cat "$esx.needs"
    echo "binary: $esx, $(stat -c %s "$esx" 2>/dev/null || echo '?') bytes"
    if command -v nvidia-smi >/dev/null; then
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,compute_mode,mig.mode.current --format=csv
        timeout 20 nvidia-smi | head -4 | tail -2
    else
        echo "nvidia-smi: not found"
    fi
    echo "NVIDIA_TF32_OVERRIDE=${NVIDIA_TF32_OVERRIDE-<unset>} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"
    # The CUDA libraries esx loads: the driver's libcuda, and cuBLAS,
    # cuRAND, NVRTC, cuDNN from the PyTorch environment's NVIDIA wheels
    # (never their stubs/ folders, which hold link-time placeholders).
    if [ -x "$python" ]; then
        timeout 60 "$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>&1 | tail -1
        nv="$(timeout 30 "$python" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)"
        if [ -n "$nv" ]; then
            libs="$(find "$nv" -name 'lib*.so*' -not -path '*/stubs/*' -printf '%h\n' | sort -u | paste -sd:)"
            export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
    else
        echo "no Python at $python: no PyTorch, and the CUDA libraries only from the loader's paths"
    fi
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    for lib in libcuda.so.1 libcublas.so libcublasLt.so libcurand.so libnvrtc.so libcudnn.so; do
        found="$( (ldconfig -p 2>/dev/null | grep -o "/[^ ]*$lib[^ ]*"; tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}" | while read -r d; do [ -n "$d" ] && ls "$d"/$lib* 2>/dev/null; done) | head -1)"
        echo "$lib: ${found:-NOT FOUND}"
    done
    run 10 "$esx" --version && note "ok        esx --version" || note "FAILED    esx --version"
fi
export RUST_BACKTRACE=1   # errors must stay one line even so

torch=()
if [ -x "$python" ] && timeout 60 "$python" -c 'import torch' 2>/dev/null; then
    export PYTHONPATH="$root/target/gpu/embedseg${PYTHONPATH:+:$PYTHONPATH}"
    torch=(--torch "$python" --torch-script "$root/tools/reference/bench_torch.py")
fi

# errored NAME: the benchmark NAME stopped on an error (not a bound): no
# figures, or a figure saying why it could not go on.
errored() {
    [ ! -s "$out/$1.jsonl" ] || grep -q '"name":"f32 parity"' "$out/$1.jsonl"
}

if section "parity smoke test: [1,1,64,64] f32 on cuda:0 against the CPU" 30; then
    bench parity-smoke 60 parity --device cuda:0 --batch 1 --size 64 --dtype f32
    # An error (not a bound) here would fail every section after it: find
    # the part at fault and run the rest without it, said in the summary.
    if errored parity-smoke && grep -q 'convolutions by cuDNN' "$out/parity-smoke.jsonl"; then
        echo "-- the smoke test stopped on an error: again with candle's convolutions (ESX_CUDNN=0)"
        if ESX_CUDNN=0 bench parity-smoke-no-cudnn 60 parity --device cuda:0 --batch 1 --size 64 --dtype f32 \
            || ! errored parity-smoke-no-cudnn; then
            export ESX_CUDNN=0; note "NOTE      the rest runs with ESX_CUDNN=0 (cuDNN failed)"
        else
            echo "-- again without esx's CUDA kernels too (ESX_KERNELS=0)"
            if ESX_CUDNN=0 ESX_KERNELS=0 bench parity-smoke-candle-only 60 parity --device cuda:0 --batch 1 --size 64 --dtype f32 \
                || ! errored parity-smoke-candle-only; then
                export ESX_CUDNN=0 ESX_KERNELS=0; note "NOTE      the rest runs with ESX_CUDNN=0 ESX_KERNELS=0"
            fi
        fi
    fi
fi

if section "parity: f64 and f32 (fp32 convolutions), then the 20-step trajectory at the quickstart's shape" 60; then
    bench parity 120 parity --device cuda:0 --batch 2 --size 128 --dtype f64,f32
    bench trajectory 120 parity --device cuda:0 --batch 4 --size 128 --dtype f32 --steps 20
    # Failed with cuDNN's convolutions: the same with candle's, to tell
    # which part is at fault.
    if grep -q 'FAILED' "$out/parity.jsonl" 2>/dev/null && grep -q 'convolutions by cuDNN' "$out/parity.jsonl"; then
        echo "-- parity failed with cuDNN: again with candle's convolutions (ESX_CUDNN=0)"
        ESX_CUDNN=0 bench parity-candle 90 parity --device cuda:0 --batch 2 --size 128 --dtype f32
    fi
fi

if section "benchmark: training [16,1,256,256] on cuda:0, tf32 beside PyTorch's default" 60; then
    bench train-16x256 120 train --device cuda:0 --train 16x256 --infer '' --steps 10 "${torch[@]}"
fi

if section "quickstart on cuda:0 (2 epochs), then ls, show, eval and predict from its store" 60; then
    cd "$work" || exit 1
    cp -r "$root/experiments" .
    id=""
    if run 150 "$esx" run experiments/quickstart.toml device=cuda:0 epochs=2 --json > run.json; then
        cat run.json
        id="$(sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p' run.json | head -1)"
    fi
    if [ -n "$id" ]; then
        note "ok        quickstart on cuda:0 ($id)"
        run 30 "$esx" ls
        run 30 "$esx" show "$id"
        run 60 "$esx" synth data/fluo-test --seed 99 --quiet
        run 90 "$esx" eval "$id" data/fluo-test --device cuda:0 && note "ok        eval on cuda:0" || note "FAILED    eval on cuda:0"
        run 90 "$esx" predict "$id" data/fluo-test/01 --out masks --device cuda:0 && note "ok        predict on cuda:0" || note "FAILED    predict on cuda:0"
        echo "$(ls masks 2>/dev/null | wc -l) masks: $(ls masks 2>/dev/null | head -3 | paste -sd' ')"
    else
        note "FAILED    quickstart on cuda:0 (no run id)"
    fi
    cd "$root" || exit 1
fi

if section "sweep with --gpus 0, two points" 60; then
    cd "$work" || exit 1
    run 120 "$esx" sweep experiments/quickstart.toml lr=1e-3,5e-4 epochs=1 --gpus 0 --jobs 2 \
        && note "ok        sweep --gpus 0" || note "FAILED    sweep --gpus 0"
    cd "$root" || exit 1
fi

if section "bad input: each one line, nothing left running" 20; then
    cd "$work" || exit 1
    refuse "$esx" run experiments/quickstart.toml device=cuda:7
    refuse "$esx" sweep experiments/quickstart.toml lr=1e-3,5e-4 --gpus 0,1
    run 20 "$esx" ls
    cd "$root" || exit 1
fi

if section "benchmark: training [2,1,256,256] and inference [1,1,2048,2048], tf32 beside PyTorch" 45; then
    bench train-2x256 60 train --device cuda:0 --train 2x256 --infer '' --steps 10 "${torch[@]}"
    bench infer-2048 60 train --device cuda:0 --train '' --infer 1x2048 --steps 10 "${torch[@]}"
fi

if section "benchmark: training [16,1,256,256] in fp32 on both sides" 45; then
    bench train-16x256-fp32 90 train --device cuda:0 --train 16x256 --infer '' --steps 10 --precision fp32 "${torch[@]}"
fi

if section "parity and trajectory with tf32 convolutions (provisional bounds)" 40; then
    bench parity-tf32 90 parity --device cuda:0 --batch 4 --size 128 --dtype f32 --steps 20 --precision tf32
fi

if section "benchmark: training [8,1,512,512], tf32 beside PyTorch" 40; then
    bench train-8x512 90 train --device cuda:0 --train 8x512 --infer '' --steps 10 "${torch[@]}"
fi

{
    echo
    echo "== summary: $failures failure(s) in $(( SECONDS - start )) s (deadline $deadline s); files in $out"
    printf '%s\n' "${results[@]}"
    # The headline figures, one line each, from the benchmarks' JSON lines.
    for f in "$out"/*.jsonl; do
        [ -s "$f" ] || continue
        sed -n 's/.*"name":"\([^"]*\)","value":\([^,]*\),"unit":"\([^"]*\)".*"detail":"\([^"]\{0,150\}\).*/\1  \2 \3  \4/p' "$f" \
            | grep -E '^(esx|torch) (train|infer)|trajectory level|FAILED|gradients|loss total|esx setup' | sed "s|^|$(basename "$f" .jsonl): |"
    done
} | tee "$out/summary.txt"
rm -rf "$work"
exit $((failures > 0))
