#!/usr/bin/env bash
# finish_base.sh — after `acm-train base` has finished a run whose files live in DIR (DIR/NAME.safetensors, .csv,
# and optionally DIR/NAME.safetensors.at-7200s.safetensors), gathers every figure its model card needs:
#   copies the model to models/NAME.safetensors, evaluates it (text + JSON), evaluates the 2-hour snapshot, draws the
#   curves to models/NAME-curves.png, and prints per-epoch validation accuracy with the training time at each epoch.
# usage: bash train/scripts/finish_base.sh [DIR (/work/ckpt)] [NAME (fmnist-vit)] [BUILD (build)]
set -euo pipefail
DIR=${1:-/work/ckpt}; NAME=${2:-fmnist-vit}; B=${3:-build}
MODEL="$DIR/$NAME.safetensors"; CSV="$DIR/$NAME.csv"
[ -f "$MODEL" ] || { echo "finish_base: $MODEL does not exist yet (is training finished? see $DIR/$NAME.log)" >&2; exit 1; }
[ -x "$B/acm-train" ] || make "$B/acm-train"
mkdir -p models
cp "$MODEL" "models/$NAME.safetensors"
echo "== test set (models/$NAME.safetensors)"
"$B/acm-train" eval "models/$NAME.safetensors"
"$B/acm-train" eval "models/$NAME.safetensors" --json > "$DIR/$NAME.eval.json"
echo "(JSON in $DIR/$NAME.eval.json)"
SNAP="$MODEL.at-7200s.safetensors"
if [ -f "$SNAP" ]; then
    echo "== 2-hour snapshot ($SNAP)"
    "$B/acm-train" eval "$SNAP" | sed -n 2p
fi
"$B/acm-train" plot "$CSV" --out "models/$NAME-curves.png" --title "$NAME"
echo "== curves: models/$NAME-curves.png"
echo "== validation per epoch (step, epoch, training seconds, val loss, val acc)"
awk -F, 'NR > 1 && $11 != "" { printf "  step %5d  epoch %5.2f  %7.0f s (%4.2f h)  val loss %.4f  val acc %.2f%%\n", $1, $2, $9, $9/3600, $10, 100*$11 }' "$CSV"
