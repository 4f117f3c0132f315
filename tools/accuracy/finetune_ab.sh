#!/usr/bin/env bash
# Issue 31's figure: fine-tuning from an imported model against training from
# scratch, on esx's synthetic quickstart data, same budget and seed.
#   bash tools/accuracy/finetune_ab.sh ESX MODEL WORK EPOCHS [SEEDS…]
# MODEL: a model file esx imports (EmbedSeg's best_iou_model.pth). Prints the
# validation IoU and AP of every epoch for both arms, and per arm the first
# epoch whose validation IoU reaches TARGET (default 0.7, the quickstart's).
set -euo pipefail
esx=$(realpath "$1"); model=$(realpath "$2"); work=$3; epochs=$4; shift 4
seeds=${*:-1 2 3}
target=${TARGET:-0.7}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && cd "$work"
rm -rf experiments && cp -r "$here/../../experiments" .
id=$("$esx" import "$model" --name imported --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "imported $model as $id"
for seed in $seeds; do
  for arm in scratch finetune; do
    init=""
    [ "$arm" = finetune ] && init="init=$id"
    start=$(date +%s)
    # shellcheck disable=SC2086
    run=$("$esx" run experiments/quickstart.toml seed=$seed epochs=$epochs tune.after_training=false $init -q --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    secs=$(( $(date +%s) - start ))
    "$esx" export "$run" --format json | python3 -c "
import json, sys
rows = json.load(sys.stdin)
rows = rows if isinstance(rows, list) else rows.get('metrics', rows)
by = {}
for r in rows:
    if r.get('split') == 'val' and r.get('key') in ('iou', 'ap'):
        by.setdefault(int(r['epoch']), {})[r['key']] = r['value']
iou = [by[e].get('iou') for e in sorted(by)]
ap = [by[e].get('ap') for e in sorted(by)]
first = next((e for e in sorted(by) if (by[e].get('iou') or 0) >= $target), None)
print('$arm seed $seed run $run ${secs}s  first epoch with val IoU >= $target: %s' % first)
print('  val IoU ' + ' '.join('%.3f' % v if v is not None else '-' for v in iou))
print('  val AP  ' + ' '.join('%.3f' % v if v is not None else '-' for v in ap))
"
  done
done
