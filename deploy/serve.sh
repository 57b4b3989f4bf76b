#!/usr/bin/env bash
# make serve: start acmd on the shipped models (docs/DESIGN.md §6 names: fmnist, fmnist-static).
# Until acmd is built, say so and classify the first 10 Fashion-MNIST test images with the best model there is.
set -eu
B=${1:-build}
acm_model=models/fmnist-vit-acm.safetensors
static_model=models/fmnist-vit.safetensors
if [ -x "$B/acmd" ]; then
    args=()
    if [ -f "$acm_model" ]; then args+=(--model "fmnist=$acm_model")
    else echo "serve: $acm_model is not shipped yet: 'fmnist' is not served"; fi
    if [ -f "$static_model" ]; then args+=(--model "fmnist-static=$static_model")
    else echo "serve: $static_model is not shipped yet: 'fmnist-static' is not served"; fi
    if [ ${#args[@]} -eq 0 ]; then
        echo "serve: no shipped model at all: serving the golden test model as 'fmnist'. Its weights are RANDOM, so its"
        echo "       labels are meaningless; it shows the server (budgets, FLOPs, compute maps), not accuracy."
        args+=(--model fmnist=tests/golden/vit_a.safetensors)
    fi
    echo "serve: acmd on --listen (default http://127.0.0.1:8080; try: curl -H 'Content-Type: image/png' --data-binary @x.png" \
         "http://127.0.0.1:8080/v1/models/fmnist/classify); Ctrl-C drains and stops it"
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
