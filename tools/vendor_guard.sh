#!/usr/bin/env bash
# Fails unless candle-core and candle-kernels come from vendor/ (the
# [patch.crates-io] in Cargo.toml is in use). When a bump of candle-nn or
# candle-core leaves the patch behind, cargo only warns "patch ... was not
# used" and builds stock candle: the CUDA libraries are linked at load time
# again and the backprop speed-up is gone. See vendor/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
status=0
check() { # crate, cargo tree's extra arguments…
    local crate=$1
    shift
    local out err
    err=$(mktemp)
    if ! out=$(cargo tree -i "$crate" --depth 0 "$@" 2>"$err"); then
        echo "vendor guard: cargo tree -i $crate $*: $(head -n 1 "$err")"
        status=1
    elif grep -q "was not used in the crate graph" "$err"; then
        echo "vendor guard: $(grep -m 1 'was not used' "$err" | sed 's/^warning: //')"
        status=1
    elif ! grep -qxF "$crate $(cargo_version "$crate") ($root/vendor/$crate)" <<<"$out"; then
        echo "vendor guard: $crate comes from ${out:-nowhere}, not $root/vendor/$crate ([patch.crates-io] not applied)"
        status=1
    else
        echo "vendor guard: $out"
    fi
    rm -f "$err"
}
cargo_version() { sed -n 's/^version = "\(.*\)"$/v\1/p' "vendor/$1/Cargo.toml" | head -n 1; }
check candle-core
check candle-core --features cuda
check candle-kernels --features cuda
exit $status
