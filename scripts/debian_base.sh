#!/usr/bin/env bash
# A local base image for the Dockerfile where Docker Hub (python:3.11-slim) cannot be reached:
# Debian bookworm from its apt mirror (debootstrap --variant=minbase) with python3 and python3-venv,
# imported into the local docker daemon. Needs root, debootstrap and a running daemon.
#   scripts/debian_base.sh [TAG]        # default emovox-base:bookworm; then
#   make image MODEL=runs/demo-onnx BASE=emovox-base:bookworm
set -euo pipefail
tag=${1:-emovox-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d "${TMPDIR:-/tmp}/emovox-base.XXXXXX")
# never remove a tree that still has something mounted in it
trap 'grep -q " $work/" /proc/mounts || rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" "$mirror" >"$work/log" \
  || { tail -20 "$work/log" >&2; exit 1; }
# nothing in the image needs apt's downloaded packages and lists, docs, man pages or locales
rm -rf "$work"/rootfs/var/cache/apt/* "$work"/rootfs/var/lib/apt/lists/* \
  "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/info/* \
  "$work"/rootfs/usr/share/locale/*
# the build's pip reaches PyPI with this host's certificate bundle (a TLS proxy's CA included)
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$work/rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["python3"]' - "$tag"
docker images "$tag"
