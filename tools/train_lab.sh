#!/usr/bin/env bash
# Train the global-context lab models (issue 9): 4 variants x 3 seeds on same-different canvases, seed 0 of
# every variant first. Re-running resumes: finished runs are skipped, an interrupted one continues from its
# last epoch (runs/lab/NAME_sSEED/train_state.pt). One CPU thread, fp32 (no native bf16 on this CPU).
# Several copies may run side by side (one per core): each claims a run with flock on NAME_sSEED.lock before
# training it; the lock goes with the process, so a killed worker leaves nothing to clean up.
#   bash tools/train_lab.sh                                # all 12 runs
#   bash tools/train_lab.sh & bash tools/train_lab.sh &    # the same, two at a time
#   SEEDS="0" bash tools/train_lab.sh                      # seed 0 only
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-"lab_resnet14 sb_lab_resnet14 nl_lab_resnet14 sbnl_lab_resnet14"}
RUNS=${RUNS:-runs/lab}
mkdir -p "$RUNS"
for seed in $SEEDS; do
  for model in $VARIANTS; do
    out=$RUNS/${model}_s${seed}
    exec {lock}>"$out.lock"
    if ! flock -n "$lock"; then echo "taken by another worker: $out"; exec {lock}>&-; continue; fi
    # checked under the lock: another worker may have just finished this run
    if [[ -f $out/$model.safetensors ]]; then echo "done: $out"; exec {lock}>&-; continue; fi
    echo "$(date -u +%H:%M:%S) train $model seed $seed -> $out"
    python -m sbcore.train --model "$model" --dataset same-different --output "$out" --seed "$seed" \
      --epochs 10 --limit-train 6000 --val-size 600 --batch-size 32 --optimizer adamw --lr 0.008 \
      --weight-decay 0.05 --warmup-epochs 0.3 --amp none --resume
    exec {lock}>&-
  done
done
