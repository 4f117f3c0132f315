#!/usr/bin/env bash
# Issue 30's benchmark on real data a package ships (package_datasets.py):
#   a: EmbedSeg 0.2.5 in PyTorch, its notebooks' defaults (embedseg_arm.py),
#      scored with and without its TTA;
#   b: esx with the defaults before issue 30 (crop 128, min_size 10, best by
#      val IoU, no tuning);
#   c: esx's defaults with everything issue 30 built (auto sizes, tuned
#      after training on the run's validation frames; the best checkpoint by
#      val AP50 until the default became AP, train.select = "ap");
#   c50: c with the best checkpoint by val AP50 (c before that change);
#   d: c with the best checkpoint by validation IoU (as a and b select);
#   e: c with the best checkpoint by validation AP over IoU 0.5:0.95 (the
#      default since it was measured here).
# The same budget for all: EPOCHS epochs of 40 batches of 4 crops, lr 5e-4.
# Every arm is scored on the test part by score.py (independent of esx;
# SEG by py-ctcmetrics); esx's own `esx eval` figures are printed beside
# for b and c (the SEG cross-check).
# Arm c's model is also scored with TTA forced on and off (does TTA pay on
# the test part, whatever the tuner chose on validation).
#   [ARMS="b c a"] [SAME_SPLIT=1] bash tools/accuracy/real_ab.sh ESX PYTHON DATA WORK EPOCHS DATASET [SEEDS…]
# SAME_SPLIT=1: arm a holds out the validation frames of the last esx arm of
# the same seed (each tool otherwise draws its own, and on few frames which
# ones are held out moves the test scores a lot).
# DATA holds DATASET and DATASET_test (CTC layout); PYTHON has EmbedSeg 0.2.5,
# torch, tifffile, scipy and py-ctcmetrics (tools/reference/setup.sh).
set -euo pipefail
esx=$(realpath "$1"); py=$2; data=$(realpath "$3"); work=$4; epochs=$5; ds=$6; shift 6
seeds=${*:-1 2 3}
arms=${ARMS:-b c a}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && cd "$work"
cp -r "$here/../../experiments" .
cat > "experiments/real_$ds.toml" <<EOF
defaults = ["model/erfnet", "loss/embedseg", "train/quick"]
name = "real-$ds"
epochs = $epochs
batch_size = 4
[data]
root = "$data/$ds"
sequences = ["01"]
annotations = "GT"
center = "medoid"
EOF
b="data.crop_size=128 cluster.min_size=10 train.select=iou tune.after_training=false"
c=""
c50="train.select=ap50"
d="train.select=iou"
e="train.select=ap"
score() { "$py" "$here/score.py" "$data/${ds}_test" "$1"; }
for seed in $seeds; do
  for arm in $arms; do
    [ "$arm" = a ] && continue
    args=${!arm}
    start=$(date +%s)
    # shellcheck disable=SC2086
    id=$("$esx" run "experiments/real_$ds.toml" seed=$seed $args -q --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    secs=$(( $(date +%s) - start ))
    rm -rf "pred_$arm$seed"
    "$esx" predict "$id" "$data/${ds}_test/01" --out "pred_$arm$seed" -q >/dev/null
    own=$("$esx" eval "$id" "$data/${ds}_test" --json -q | "$py" -c "
import json,sys; r=json.load(sys.stdin); s=r['scores']
print('esx-eval AP50 %.4f SEG %.4f tta %s cluster %s' % (s['ap_mean'][0], s['seg'], r['tta'], json.dumps(r['cluster'])))")
    echo "$ds $arm seed $seed $(score "pred_$arm$seed") | $own | run $id ${secs}s"
    if [ "$arm" = c ]; then
      for tta in --tta --no-tta; do
        rm -rf "pred_c$seed$tta"
        "$esx" predict "$id" "$data/${ds}_test/01" --out "pred_c$seed$tta" -q $tta >/dev/null
        echo "$ds c$tta seed $seed $(score "pred_c$seed$tta")"
      done
    fi
  done
  case " $arms " in *" a "*) ;; *) continue ;; esac
  val=""
  if [ "${SAME_SPLIT:-0}" = 1 ] && [ -n "${id:-}" ]; then
    val=$("$esx" show "$id" --json | "$py" -c "
import json,sys
split = next(e for e in json.load(sys.stdin)['events'] if e['kind'] == 'split')
print(','.join(f.split('/')[1] for f in json.loads(split['detail'])['val']))")
  fi
  "$py" "$here/embedseg_arm.py" "$data/$ds" "$data/${ds}_test" "es$seed" "$seed" "$epochs" 160 4 "$val" >"es$seed.log" 2>&1
  echo "$ds a seed $seed $(score "es$seed/pred_plain") | EmbedSeg, no TTA | $(cat "es$seed/arm.json")"
  echo "$ds a+tta seed $seed $(score "es$seed/pred_tta") | EmbedSeg, its TTA"
done
