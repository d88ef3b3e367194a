#!/usr/bin/env bash
# Build the operator image with whichever container engine works here; `make image` and `make image-test` call it.
#
#   tools/image.sh engine     print the engine command (docker, or podman with this machine's flags), or why none
#   tools/image.sh base       make sure the base image exists: pull it, or build a debootstrapped stand-in
#   tools/image.sh build      build IMAGE:TAG from the Dockerfile on that base
#   tools/image.sh size       print the image's size and what it adds on top of its base
#   tools/image.sh ref        print IMAGE:TAG, the reference `build` tags
#
# Settings (environment): IMAGE, TAG (default: pyproject's version), BASE_IMAGE (default: the Dockerfile's),
# ENGINE (skip detection, e.g. ENGINE="podman --runtime runc").
#
# Where no registry is reachable, python:3.11-slim-bookworm cannot be pulled; the build then runs on
# localhost/bookworm-python:3.11, a Debian bookworm + python3 root made by debootstrap (needs root and
# `apt-get install debootstrap`). It is larger than the slim image, so compare what the image adds, not totals.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-ghcr.io/bucketwarden/bucketwarden}"
TAG="${TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)}"
DEFAULT_BASE="$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)"
STAND_IN="localhost/bookworm-python:3.11"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

say() { echo "image: $*" >&2; }

# docker only when its daemon answers: a docker CLI without a daemon is common (and is what this machine has).
# podman runs with runc: crun fails on hybrid cgroups ("cgroups in hybrid mode not supported").
detect_engine() {
  if [[ -n "${ENGINE:-}" ]]; then echo "$ENGINE"; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null 2>&1; then
    if command -v runc >/dev/null 2>&1; then echo "podman --runtime runc"; else echo podman; fi
    return
  fi
  local docker="docker is not installed"
  command -v docker >/dev/null 2>&1 && docker="docker has no daemon (\`docker info\` fails)"
  say "no container engine: $docker and podman is not installed (apt-get install podman runc debootstrap)"
  return 1
}

engine_words() { read -r -a ENGINE_CMD <<<"$(detect_engine)"; }

has_image() { "${ENGINE_CMD[@]}" image inspect "$1" >/dev/null 2>&1; }

# Debian's python3 in a minimal bookworm root, trimmed of apt lists, caches, docs and locales.
build_stand_in() {
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; return 1; }
  local mirror rootfs
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  # Outside the repository: the root is about 275 MB before trimming.
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/bucketwarden-rootfs.XXXXXX")"
  say "debootstrap bookworm + python3 from $mirror (about a minute)"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs/root" "$mirror" >"$rootfs/debootstrap.log" 2>&1; then
    tail -20 "$rootfs/debootstrap.log" >&2
    rm -rf "$rootfs"
    return 1
  fi
  local root="$rootfs/root"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  local status=0
  tar -C "$root" -c . | "${ENGINE_CMD[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$STAND_IN" >/dev/null || status=$?
  rm -rf "$rootfs"
  [[ $status -eq 0 ]] || return "$status"
  say "built $STAND_IN"
}

# The base the build will use, on stdout: BASE_IMAGE if present or pullable, else the stand-in.
ensure_base() {
  local base="${BASE_IMAGE:-$DEFAULT_BASE}"
  if has_image "$base"; then echo "$base"; return; fi
  if [[ "$base" == "$STAND_IN" ]]; then build_stand_in; echo "$base"; return; fi
  if "${ENGINE_CMD[@]}" pull -q "$base" >/dev/null 2>&1; then echo "$base"; return; fi
  if [[ -n "${BASE_IMAGE:-}" ]]; then say "cannot pull BASE_IMAGE=$base"; return 1; fi
  say "$base cannot be pulled (no registry reachable?): using $STAND_IN"
  has_image "$STAND_IN" || build_stand_in
  echo "$STAND_IN"
}

build() {
  local base revision
  base="$(ensure_base)"
  revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then revision="$revision-dirty"; fi
  local args=(build --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$TAG" --build-arg "REVISION=$revision"
    --tag "$IMAGE:$TAG" .)
  if [[ "$(basename "${ENGINE_CMD[0]}")" == podman ]]; then
    # The builder's pip reaches PyPI over the host's network, trusting the host's CA bundle (a TLS proxy may sit
    # in between). The mount is for build steps only; it is not part of any layer.
    local podman_args=(--network host)
    [[ -f "$CA_BUNDLE" ]] && podman_args+=(--volume "$CA_BUNDLE:$CA_BUNDLE:ro")
    args=(build "${podman_args[@]}" "${args[@]:1}")
  fi
  say "${ENGINE_CMD[*]} ${args[*]}"
  "${ENGINE_CMD[@]}" "${args[@]}"
}

size() {
  local base image_bytes base_bytes
  base="$("${ENGINE_CMD[@]}" image inspect --format '{{index .Config.Labels "org.opencontainers.image.base.name"}}' "$IMAGE:$TAG")"
  image_bytes="$("${ENGINE_CMD[@]}" image inspect --format '{{.Size}}' "$IMAGE:$TAG")"
  base_bytes="$("${ENGINE_CMD[@]}" image inspect --format '{{.Size}}' "$base")"
  awk -v i="$image_bytes" -v b="$base_bytes" -v name="$IMAGE:$TAG" -v base="$base" 'BEGIN {
    printf "%s: %.1f MiB, of which %.1f MiB on top of its base %s (%.1f MiB)\n",
      name, i / 1048576, (i - b) / 1048576, base, b / 1048576 }'
}

case "${1:-}" in
  engine) detect_engine ;;
  base) engine_words; ensure_base ;;
  build) engine_words; build ;;
  size) engine_words; size ;;
  ref) echo "$IMAGE:$TAG" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
