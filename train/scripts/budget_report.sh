#!/usr/bin/env bash
# budget_report.sh — the figures of the issue "one ACM model for every budget" from the arms of budget_arms.sh
# (models/fmnist-vit-acm.md, "One model for every budget"):
#   DIR/report.md            every arm's rows, then per beta the best exact-budget policy of each arm
#   DIR/accuracy_vs_gflops.png  accuracy against GFLOPs per image for every arm and policy, the shipped model's
#                            CAP curves in both orders, the uniform arms and the static base
#   DIR/ablation_heatmaps.png   the same 8 test images under dedicated:0.5 and its ablations (argmax), one row each
# usage: bash train/scripts/budget_report.sh DIR [SHIPPED_MODEL=models/fmnist-vit-acm.safetensors]   (BUILD=build)
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 2; }
DIR=$1; SHIPPED=${2:-models/fmnist-vit-acm.safetensors}; B=${BUILD:-build}
[ -f "$DIR/table.tsv" ] || { echo "budget_report: no $DIR/table.tsv (run train/scripts/budget_arms.sh first)" >&2; exit 1; }
make --no-print-directory "$B/acm-train" >/dev/null
T=$B/acm-train
# the shipped model and the static base on the same grid (cached: delete DIR/shipped.tsv to measure again)
if [ ! -f "$DIR/shipped.tsv" ]; then
    {
        j=$("$T" eval models/fmnist-vit.safetensors --json)
        echo "$j" | /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin)
print("static\t-\tstatic\t1\t%.2f\t1.0000\t%.4f" % (100*o["accuracy"], o["gflops_per_image"]))'
        for b in 0.125 0.25 0.5 0.75; do
            for p in mean cap-gain cap-level; do
                if [ "$p" = mean ]; then j=$("$T" eval "$SHIPPED" --policy mean --budget $b --json)
                else j=$("$T" eval "$SHIPPED" --policy cap --cap-order "${p#cap-}" --budget $b --json); fi
                echo "$j" | /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin)
print("shipped\t-\t%s\t%s\t%.2f\t%.4f\t%.4f" % (sys.argv[1], sys.argv[2], 100*o["accuracy"],
      o["budget_realised"]["mean"], o["gflops_per_image"]))' "$p" "$b"
            done
        done
        for k in 1 2 3; do
            j=$("$T" eval "$SHIPPED" --policy fixed --k $k --json)
            echo "$j" | /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin)
print("shipped\t-\tfixed\t%s\t%.2f\t%.4f\t%.4f" % (sys.argv[1], 100*o["accuracy"], o["budget_realised"]["mean"],
      o["gflops_per_image"]))' "$k"
        done
    } > "$DIR/shipped.tsv.tmp"
    mv "$DIR/shipped.tsv.tmp" "$DIR/shipped.tsv"
fi
all=$(mktemp)
trap 'rm -f "$all"' EXIT
tail -n +2 "$DIR/table.tsv" > "$all"
cat "$DIR/shipped.tsv" >> "$all"

{
    echo "| arm | seed | policy | β or k | accuracy | realised budget | GFLOPs / image |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s%% | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$all"
    echo
    echo "Best exact-budget policy (mean, cap in gain or level order) of each arm at each β; uniform arms (no gates, N = 4) at β = k/4:"
    echo
    echo "| β | arm | seed | best policy | accuracy |"
    echo "|---|---|---|---|---|"
    awk -F'\t' '($3 == "mean" || $3 ~ /^cap/) && ($4 == 0.25 || $4 == 0.5 || $4 == 0.75) {
            key = $4 "\t" $1 "\t" $2
            if (!(key in best) || $5 > best[key]) { best[key] = $5; pol[key] = $3 }
        }
        $3 == "fixed" && $1 ~ /^uniform/ { b = $4 / 4; key = b "\t" $1 "\t" $2; best[key] = $5; pol[key] = "fixed k=" $4 }
        END { for (k in best) { split(k, f, "\t"); printf "%s\t%s\t%s\t%s\t%s\n", f[1], f[2], f[3], pol[k], best[k] } }' \
        "$all" | sort -t$'\t' -k1,1n -k5,5nr | awk -F'\t' '{printf "| %s | %s | %s | %s | %s%% |\n", $1, $2, $3, $4, $5}'
} > "$DIR/report.md"

# accuracy vs GFLOPs: one series per (arm, policy)
dat=$DIR/points.dat
awk -F'\t' '$3 != "argmax" { key = $1 " s" $2 " " $3; if (!(key in seen)) { seen[key] = ++n; name[n] = key }
        pts[seen[key]] = pts[seen[key]] sprintf("%s %s\n", $7, $5) }
    $3 == "argmax" { key = $1 " s" $2 " argmax"; seen[key] = ++n; name[n] = key; pts[n] = sprintf("%s %s\n", $7, $5) }
    END { for (i = 1; i <= n; i++) printf "# %s\n%s\n\n", name[i], pts[i] }' "$all" > "$dat"
n=$(grep -c '^# ' "$dat")
{
    echo "set terminal pngcairo size 1200,800 noenhanced"
    echo "set output '$DIR/accuracy_vs_gflops.png'"
    echo "set grid; set key outside right font ',9'"
    echo "set title 'Fashion-MNIST test accuracy vs executed GFLOPs per image: every arm of the budget experiment'"
    echo "set xlabel 'GFLOPs per image (2 per multiply-add, gates included)'; set ylabel 'accuracy (%)'"
    echo "set yrange [70:89]"
    printf "plot "
    for ((i = 0; i < n; i++)); do
        t=$(grep '^# ' "$dat" | sed -n "$((i + 1))p" | cut -c3-)
        [ $i -gt 0 ] && printf ", "
        printf "'%s' index %d with linespoints pt %d title '%s'" "$dat" "$i" $((i % 13 + 1)) "$t"
    done
    echo
} | gnuplot
# the ablation's compute maps side by side (rows: dedicated, without L_e, without L_d, without both)
rows=()
for a in dedicated_0.5_s1 nole_0.5_s1 nold_0.5_s1 noaux_0.5_s1; do
    [ -f "$DIR/$a/model.safetensors" ] && rows+=("$DIR/$a/model.safetensors")
done
if [ ${#rows[@]} -gt 0 ]; then
    "$T" heatmaps --out "$DIR/ablation_heatmaps.png" --policy argmax "${rows[@]}" | tee "$DIR/ablation_heatmaps.txt"
fi
echo "budget_report: wrote $DIR/report.md, $DIR/accuracy_vs_gflops.png${rows:+, $DIR/ablation_heatmaps.png}"
