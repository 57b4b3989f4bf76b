#!/usr/bin/env bash
# budget_arms.sh — the arms of issue "one ACM model for every budget" (models/fmnist-vit-acm.md, "One model for every
# budget"): every arm is phase 3 only, started from the same phase-2 checkpoint (make_acm_model.sh keeps it as
# CKPT.phase2), with the same steps and seed, then calibrated and evaluated on the 10k test set. Resumable: an arm
# whose result file exists is skipped, an interrupted arm continues from its own checkpoint.
#
# usage: bash train/scripts/budget_arms.sh PHASE2_CKPT DIR EPOCHS3 ARM...
#   environment: BUILD (build), SEED (1), BASE (models/fmnist-vit.safetensors: the static teacher the checkpoint was
#   made from), P3_OPTS (more acmize options for every arm's phase 3, e.g. "--distill 1,2 --gate-lr-mult 3" to match
#   the shipped conversion), THREADS (2: OpenBLAS threads; 1 for two scripts side by side on
#   different arms, each writing its own DIR/ARM_sSEED), TAG (names a variant of P3_OPTS: the arms go to
#   DIR/ARM_TAG_sSEED and are labelled "ARM TAG" in the tables, beside the untagged ones, e.g. TAG=nodistill)
#   arms:  dedicated:B     phase 3 with beta_target B (the paper: one model per budget)
#          sampled:LO:HI   beta_target drawn per batch in [LO, HI] (one model, lambda calibration)
#          film:LO:HI      sampled, with budget-conditioned gates (--film: the gates see the drawn beta)
#          uniform:K       no gates, every token runs K learners (the uniform baseline, evaluated with --policy fixed)
#          nole:B / nold:B / noaux:B   dedicated B without the entropy loss / the diversity loss / both (ablation)
# SEED seeds phase 3 (--phase3-seed: order, augmentation and Gumbel streams); phases 1-2 are the checkpoint's.
# Writes DIR/ARM_sSEED/model.safetensors, DIR/ARM_sSEED/eval.tsv (arm, seed, policy, beta or k, accuracy %, realised
# budget, GFLOP/image) and DIR/table.tsv (every arm's rows). Evaluations: a dedicated or ablation arm at its own B
# (argmax, mean, cap in gain and in level order), the sampled arm at 0.25/0.5/0.75/1 (the same) and argmax, the uniform
# arm with its K. Calibration (acm-train calibrate --betas 0.25:0.75:0.125) also records the CAP order that wins on
# held-out images; an arm folder without the file `calibrated` is (re)calibrated with this script's binary.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,18p "$0"; exit 2; }
P2=$1; DIR=$2; E3=$3; shift 3
B=${BUILD:-build}; SEED=${SEED:-1}; BASE=${BASE:-models/fmnist-vit.safetensors}; THREADS=${THREADS:-2}
read -r -a p3opts <<< "${P3_OPTS:-}"
[ -f "$P2" ] || { echo "budget_arms: no phase-2 checkpoint $P2" >&2; exit 1; }
[ -f "$BASE" ] || { echo "budget_arms: no base model $BASE" >&2; exit 1; }
make --no-print-directory "$B/acm-train" >/dev/null
mkdir -p "$DIR"
# a private copy per script (two may run side by side): rebuilding the tree must not change running arms
T=$DIR/acm-train.$$
cp "$B/acm-train" "$T"
trap 'rm -f "$T"' EXIT
stamp() { date -u +%FT%TZ; }
evalrow() { # POLICY BETA_OR_K MODEL -> one tab-separated row
    local pol=$1 v=$2 m=$3 j
    if [ "$pol" = fixed ]; then j=$("$T" eval "$m" --policy fixed --k "$v" --json)
    elif [ "$pol" = argmax ]; then j=$("$T" eval "$m" --policy argmax --json)
    elif [ "${pol#cap-}" != "$pol" ]; then j=$("$T" eval "$m" --policy cap --cap-order "${pol#cap-}" --budget "$v" --json)
    else j=$("$T" eval "$m" --policy "$pol" --budget "$v" --json); fi
    /usr/bin/python3 -c 'import json,sys
o=json.loads(sys.argv[1]); b=o.get("budget_realised",{})
print("\t".join([sys.argv[2], sys.argv[3], "%.2f" % (100*o["accuracy"]), "%.4f" % b.get("mean", float("nan")),
                 "%.4f" % o.get("gflops_per_image", float("nan"))]))' "$j" "$pol" "$v"
}
for arm in "$@"; do
    d=$DIR/${arm//:/_}${TAG:+_$TAG}_s$SEED; mkdir -p "$d"
    [ -f "$d/eval.tsv" ] && { echo "$(stamp) $arm: done before"; continue; }
    kind=${arm%%:*}; arg=${arm#*:}
    opts=(--phase3-seed "$SEED" --epochs "2,1,$E3" --threads "$THREADS" --quiet ${p3opts[@]+"${p3opts[@]}"})
    case $kind in
        dedicated) opts+=(--beta "$arg") ;;
        sampled) opts+=(--beta-sample "$arg") ;;
        film) opts+=(--beta-sample "$arg" --film) ;;
        uniform) opts+=(--uniform "$arg") ;;
        nole) opts+=(--beta "$arg" --weights 0.1,0,0.05) ;;
        nold) opts+=(--beta "$arg" --weights 0.1,0.05,0) ;;
        noaux) opts+=(--beta "$arg" --weights 0.1,0,0) ;;
        *) echo "budget_arms: unknown arm $arm" >&2; exit 2 ;;
    esac
    m=$d/model.safetensors
    if [ ! -f "$m" ]; then
        [ -f "$m.ckpt" ] || cp "$P2" "$m.ckpt"
        echo "$(stamp) $arm: acmize phase 3 ${opts[*]}"
        /usr/bin/time -f "$arm phase 3 wall %e s" "$T" acmize --base "$BASE" --out "$m" \
            --modules mlp --resume "${opts[@]}" 2>&1 | grep -v '%.*ETA' | tail -3
    fi
    if [ "$kind" != uniform ] && [ ! -f "$d/calibrated" ]; then
        "$T" calibrate "$m" --betas 0.25:0.75:0.125 | grep "cap beta\|wrote" && touch "$d/calibrated"
    fi
    echo "$(stamp) $arm: evaluation"
    {
        case $kind in
            uniform) evalrow fixed "$arg" "$m" ;;
            sampled|film) evalrow argmax - "$m"
                for b in 0.25 0.5 0.75 1; do for p in mean cap-gain cap-level; do evalrow $p "$b" "$m"; done; done ;;
            *) evalrow argmax - "$m"; for p in mean cap-gain cap-level; do evalrow $p "$arg" "$m"; done ;;
        esac
    } | sed "s/^/$arm${TAG:+ $TAG}\t$SEED\t/" > "$d/eval.tsv.tmp"
    mv "$d/eval.tsv.tmp" "$d/eval.tsv"
    cat "$d/eval.tsv"
done
printf 'arm\tseed\tpolicy\tbeta_or_k\taccuracy\trealised\tgflops\n' > "$DIR/table.tsv"
cat "$DIR"/*/eval.tsv >> "$DIR/table.tsv"
echo "$(stamp) table: $DIR/table.tsv"
