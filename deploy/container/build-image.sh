#!/usr/bin/env bash
# make image: builds acmd's container image (deploy/container/Containerfile) with podman, from Debian 12 packages only.
#
#   deploy/container/build-image.sh [BUILD] [IMAGE]     BUILD: scratch folder (default build), IMAGE: tag (default
#                                                         localhost/acm:latest)
#
# 1. The two base images, made once and kept (REBUILD_BASE=1 makes them again): mmdebstrap --variant=minbase writes a
#    Debian 12 root file system with the packages of packages-build.txt or packages-runtime.txt into a tar file, from
#    the same apt sources as this machine (/etc/apt/sources.list.d/debian.sources when it exists, else
#    deb.debian.org); `podman import` turns it into localhost/acm-base:build and localhost/acm-base:runtime. No container
#    registry is involved: none is reachable here.
# 2. The build context, BUILD/image/context: only what the Containerfile copies (the sources of the two programs, the
#    Makefile, the shipped models, the image's acmd.json), so that build/ and .git never reach it.
# 3. podman build --isolation chroot --format docker (RUN steps in a chroot: crun cannot create containers here; the
#    docker format keeps HEALTHCHECK). The image's id goes to BUILD/image/id, which tests/deploy/test_container.c
#    looks for.
# Prints each step's time. Needs root (mmdebstrap's root mode, podman's storage) and the packages podman, mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
IMAGE=${2:-localhost/acm:latest}
here=deploy/container
work=$B/image
for c in podman mmdebstrap; do
    command -v $c >/dev/null || { echo "image: $c is not installed (make deps installs it)"; exit 1; }
done
mkdir -p "$work"
step() { # step NAME command...: runs it and prints its time
    local name=$1 t0; shift
    t0=$(date +%s)
    echo "=== image: $name"
    "$@"
    echo "=== image: $name: $(( $(date +%s) - t0 ))s"
}
sources=()
[ -f /etc/apt/sources.list.d/debian.sources ] && sources=(/etc/apt/sources.list.d/debian.sources)

base() { # base KIND: localhost/acm-base:KIND from packages-KIND.txt
    local kind=$1 tag=localhost/acm-base:$1 pk
    if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$tag"; then
        echo "image: $tag exists (REBUILD_BASE=1 makes it again)"
        return 0
    fi
    pk=$(grep -v '^#' "$here/packages-$kind.txt" | paste -sd, -)
    local slim=()
    # the runtime stage keeps no manuals, info pages, translations or docs, but each package's copyright file
    [ "$kind" = runtime ] && slim=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*'
        --dpkgopt='path-include=/usr/share/doc/*/copyright')
    mmdebstrap --quiet --variant=minbase --include="$pk" "${slim[@]}" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$work/base-$kind.tar" "${sources[@]}"
    podman import --quiet --change 'CMD ["/bin/bash"]' "$work/base-$kind.tar" "$tag" >/dev/null
    rm -f "$work/base-$kind.tar"
    echo "image: $tag made ($(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

context() {
    rm -rf "$work/context"
    mkdir -p "$work/context/models" "$work/context/deploy/container"
    cp -a Makefile engine proto train server clients "$work/context/"
    cp -a models/fmnist-vit-acm.safetensors models/fmnist-vit.safetensors models/speech-acm.safetensors models/speech.safetensors \
        "$work/context/models/"
    cp -a "$here/acmd.json" "$work/context/deploy/container/"
}

t_all=$(date +%s)
rm -f "$work/id"
step "base image: build stage (mmdebstrap, packages-build.txt)" base build
step "base image: runtime stage (mmdebstrap, packages-runtime.txt)" base runtime
step "build context" context
build() { # the build's own output to BUILD/image/build.log; its tail when it fails
    podman build --isolation chroot --format docker --layers=false -f "$here/Containerfile" -t "$IMAGE" \
        "$work/context" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; return 1; }
}
step "podman build $IMAGE (log: $work/build.log)" build
podman image inspect --format '{{.Id}}' "$IMAGE" >"$work/id"
echo "image: $IMAGE ($(cut -c1-12 "$work/id"), $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')) in $(( $(date +%s) - t_all ))s"
