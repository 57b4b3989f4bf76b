#!/usr/bin/env bash
# make serve: start acmd on the shipped models (docs/DESIGN.md §6 names: fmnist, fmnist-static).
# Until acmd is built, say so and classify the first 10 Fashion-MNIST test images with the best model there is.
set -eu
B=${1:-build}
acm_model=models/fmnist-vit-acm.safetensors
static_model=models/fmnist-vit.safetensors
if [ -x "$B/acmd" ]; then
    args=()
    [ -f "$acm_model" ] && args+=(--model "fmnist=$acm_model")
    [ -f "$static_model" ] && args+=(--model "fmnist-static=$static_model")
    if [ ${#args[@]} -eq 0 ]; then
        echo "serve: no shipped model yet (models/*.safetensors); serving the golden random-weight test model as 'fmnist'"
        args+=(--model fmnist=tests/golden/vit_a.safetensors)
    fi
    exec "$B/acmd" "${args[@]}" "${@:2}"
fi
echo "serve: the HTTP server (acmd) is not built yet; classifying 10 Fashion-MNIST test images instead."
model=$acm_model
if [ ! -f "$model" ]; then
    model=tests/golden/vit_a.safetensors
    echo "serve: no trained ACM model shipped yet: using the golden test model, whose weights are RANDOM,"
    echo "       so its labels are meaningless; this shows the engine (FLOPs, budgets, compute maps), not accuracy."
fi
exec "$B/acm-train" predict "$model" --first 10 --policy cap --budget 0.5
