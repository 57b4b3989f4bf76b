#!/usr/bin/env bash
# budget_report.sh — the figures of the issue "one ACM model for every budget" from the arms of budget_arms.sh
# (models/fmnist-vit-acm.md, "One model for every budget"):
#   DIR/report.md            every arm's rows, then per beta the best exact-budget policy of each arm and seed, then
#                            the same over seeds (mean, each seed, spread)
#   DIR/accuracy_vs_gflops.png  accuracy against GFLOPs per image for every arm and policy (mean over seeds), the shipped model's
#                            CAP curves in both orders, the uniform arms and the static base
#   DIR/ablation_heatmaps.png   the same 8 test images under dedicated:0.5 and its ablations (argmax), one row each
# usage: bash train/scripts/budget_report.sh DIR [SHIPPED_MODEL=models/fmnist-vit-acm.safetensors]
#        (BUILD=build, BASE=models/fmnist-vit.safetensors: the static teacher, HEATMAP_ARMS: arm folders of the
#        ablation heatmaps). Arms tagged by budget_arms.sh's TAG (labels with a space) are drawn under cap (level) only.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,11p "$0"; exit 2; }
DIR=$1; SHIPPED=${2:-models/fmnist-vit-acm.safetensors}; B=${BUILD:-build}; BASE=${BASE:-models/fmnist-vit.safetensors}
[ -f "$DIR/table.tsv" ] || { echo "budget_report: no $DIR/table.tsv (run train/scripts/budget_arms.sh first)" >&2; exit 1; }
make --no-print-directory "$B/acm-train" >/dev/null
T=$B/acm-train
# the shipped model and the static base on the same grid (cached: delete DIR/shipped.tsv to measure again)
if [ ! -f "$DIR/shipped.tsv" ]; then
    {
        j=$("$T" eval "$BASE" --json)
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
    echo
    echo "Over seeds: for each arm at each β, the exact-budget policy with the best mean over the seeds run, each seed's"
    echo "accuracy under it and their spread (max − min; one seed: no spread):"
    echo
    echo "| β | arm | policy | seeds | mean accuracy | per seed | spread |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' '(($3 == "mean" || $3 ~ /^cap/) && ($4 == 0.25 || $4 == 0.5 || $4 == 0.75)) || ($3 == "fixed" && $1 ~ /^uniform/) {
            b = $3 == "fixed" ? $4 / 4 : $4; pol = $3 == "fixed" ? "fixed k=" $4 : $3
            key = b "\t" $1 "\t" pol; n[key]++; sum[key] += $5; per[key] = per[key] (n[key] > 1 ? " / " : "") $5 ($2 == "-" ? "" : " (s" $2 ")")
            if (n[key] == 1 || $5 > hi[key]) hi[key] = $5
            if (n[key] == 1 || $5 < lo[key]) lo[key] = $5
        }
        END { for (k in n) { split(k, f, "\t"); ba = f[1] "\t" f[2]; m = sum[k] / n[k]
                if (!(ba in best) || m > best[ba]) { best[ba] = m; bk[ba] = k } }
              for (ba in bk) { k = bk[ba]; split(k, f, "\t")
                printf "%s\t%s\t%s\t%d\t%.2f\t%s\t%s\n", f[1], f[2], f[3], n[k], best[ba], per[k],
                       (n[k] > 1 ? sprintf("%.2f", hi[k] - lo[k]) : "-") } }' \
        "$all" | sort -t$'\t' -k1,1n -k5,5nr | awk -F'\t' '{printf "| %s | %s | %s | %s | %s%% | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}'
} > "$DIR/report.md"

# accuracy vs GFLOPs: one series per (arm, policy), the dedicated models joined into one curve per policy, means over
# seeds; argmax rows are left to the table, ablation arms are drawn under cap (level) only. Colour: the arm; line and
# point: the policy. Two panels: everything, and the top 2.5 points.
dat=$DIR/points.dat
awk -F'\t' '$3 == "argmax" { next }
    { fam = $1; if (fam ~ /^dedicated:/) fam = "dedicated (one model per beta)"
      if ((fam ~ /^(nole|nold|noaux):/ || fam ~ / /) && $3 != "cap-level") next
      key = fam "\t" $3; if (!(key in seen)) { seen[key] = ++n; byi[n] = key; if (!(fam in fi)) fi[fam] = ++nf }
      pt = key SUBSEP $4; if (!(pt in cnt)) order[seen[key]] = order[seen[key]] SUBSEP $4
      cnt[pt]++; gf[pt] += $7; acc[pt] += $5; if (!((fam, $2) in sd)) { sd[fam, $2] = 1; ns[fam]++ } }
    END { for (i = 1; i <= n; i++) { split(byi[i], f, "\t")
              printf "# %s\t%s\t%s\t%d\n", f[1], f[2], (f[1] ~ /^(shipped|static)$/ ? "-" : ns[f[1]]), fi[f[1]]
              m = split(substr(order[i], 2), bs, SUBSEP)
              for (j = 1; j <= m; j++) { pt = byi[i] SUBSEP bs[j]; printf "%.5f %.3f\n", gf[pt] / cnt[pt], acc[pt] / cnt[pt] }
              printf "\n\n" } }' "$all" > "$dat"
colours=(black '#d62728' '#1f77b4' '#2ca02c' '#9467bd' '#ff7f0e' '#8c564b' '#e377c2' '#17becf' '#7f7f7f' '#bcbd22')
plotcmd() { # the plot command over every series of $dat; KEY=1 gives titles
    local i=0 first=1 fam pol seeds ci title style
    printf "plot "
    while IFS=$'\t' read -r fam pol seeds ci; do
        fam=${fam#\# }
        case $pol in
            mean) style="dt 3 pt 6" ;; cap-gain) style="dt 2 pt 4" ;; cap-level) style="dt 1 pt 7" ;; *) style="dt 1 pt 5" ;;
        esac
        title="$fam, $pol"; [ "$seeds" != - ] && title="$title ($seeds seed$([ "$seeds" = 1 ] || echo s))"
        [ $first = 1 ] || printf ", "
        first=0
        printf "'%s' index %d with linespoints %s ps 1.3 lw 1.5 lc rgb '%s' %s" "$dat" $i "$style" \
            "${colours[$(( (ci - 1) % ${#colours[@]} ))]}" "$([ "${1:-0}" = 1 ] && echo "title '$title'" || echo notitle)"
        i=$((i + 1))
    done < <(grep '^# ' "$dat")
    echo
}
# the y ranges from the data: everything, and the top 2.8 points
read -r ylo ytop yhi < <(awk 'NF == 2 && $1 !~ /^#/ { if (!n++ || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2 }
    END { printf "%.1f %.1f %.1f\n", lo - 0.5, hi + 0.3 - 2.8, hi + 0.3 }' "$dat")
{
    echo "set terminal pngcairo size 1600,760 noenhanced"
    echo "set output '$DIR/accuracy_vs_gflops.png'"
    echo "set multiplot layout 1,2 title 'Fashion-MNIST test accuracy vs executed GFLOPs per image: every arm of the budget experiment (means over seeds)'"
    echo "set grid; set xlabel 'GFLOPs per image (2 per multiply-add, gates included)'; set ylabel 'accuracy (%)'"
    echo "set size 0.42,0.95; set origin 0,0; set title 'all'; set yrange [$ylo:$yhi]"
    plotcmd 0
    echo "set size 0.58,0.95; set origin 0.42,0; set title 'top'; set yrange [$ytop:$yhi]; set key outside right font ',9'"
    plotcmd 1
    echo "unset multiplot"
} | gnuplot
# the ablation's compute maps side by side, one row per arm folder of HEATMAP_ARMS (default: dedicated 0.5, without
# L_e, without L_d, without both); drawn when two or more of them exist
rows=()
for a in ${HEATMAP_ARMS:-dedicated_0.5_s1 nole_0.5_s1 nold_0.5_s1 noaux_0.5_s1}; do
    [ -f "$DIR/$a/model.safetensors" ] && rows+=("$DIR/$a/model.safetensors")
done
maps=
if [ ${#rows[@]} -gt 1 ]; then
    "$T" heatmaps --out "$DIR/ablation_heatmaps.png" --policy argmax "${rows[@]}" | tee "$DIR/ablation_heatmaps.txt"
    maps=", $DIR/ablation_heatmaps.png"
fi
echo "budget_report: wrote $DIR/report.md, $DIR/accuracy_vs_gflops.png$maps"
