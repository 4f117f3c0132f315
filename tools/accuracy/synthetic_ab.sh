#!/usr/bin/env bash
# esx with today's defaults (b: crop 128 as the quickstart gives, min_size 10,
# best by IoU, no tuning) against esx with issue 30's chain (c: auto sizes,
# best by AP50, tuned after training) on synthetic fluorescence cells, over
# seeds; scored on a test set synthesised with another seed, never tuned on.
#   bash tools/accuracy/synthetic_ab.sh ESX WORKDIR [SEEDS…]
set -euo pipefail
esx=$(realpath "$1"); work=$2; shift 2
seeds=${*:-1 2 3}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work" && cd "$work"
cp -r "$repo/experiments" .
"$esx" synth test --kind fluo --sequences 1 --frames 8 --size 256 --seed 99 >/dev/null
b="cluster.min_size=10 train.select=iou tune.after_training=false"
c="data.crop_size=auto"
for seed in $seeds; do
  for arm in b c; do
    args=${!arm}
    id=$("$esx" run experiments/quickstart.toml seed=$seed $args -q --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    "$esx" eval "$id" test --json -q | python3 -c "
import json,sys; r=json.load(sys.stdin); s=r['scores']
print('$arm seed $seed', 'AP50 %.4f AP %.4f SEG %.4f' % (s['ap_mean'][0], sum(s['ap_mean'])/len(s['ap_mean']), s['seg']), 'tta', r['tta'], 'cluster', json.dumps(r['cluster']))"
  done
done
