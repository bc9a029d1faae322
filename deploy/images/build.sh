#!/usr/bin/env bash
# Builds stand-ins for the base images compose.yaml and the Dockerfile name, from Debian packages,
# into the Docker daemon at $DOCKER_HOST: for a machine that reaches Debian's and Python's package
# archives but no image registry. Each stand-in is tagged with the real image's name, so the
# Dockerfile and compose.yaml run unchanged. Never run it against a daemon whose real images you
# keep: it re-tags python:3.11-slim-bookworm, redis:7-alpine and the others.
#
#   deploy/images/build.sh        # first run 1.5 to 2.5 minutes; then seconds (build cache)
#
# Steps: a minimal Debian bookworm root (debootstrap --variant=minbase, root only), imported as
# hanport-standin/debian:bookworm once; then one small Dockerfile per image (the classic builder,
# host network, since such a daemon may have no default bridge).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base=hanport-standin/debian:bookworm

# Dockerfile -> the image name it stands in for (as compose.yaml and the Dockerfile spell it)
standins=(
  "python.Dockerfile python:3.11-slim-bookworm"
  "redis.Dockerfile redis:7-alpine"
  "caddy.Dockerfile caddy:2-alpine"
  "mosquitto.Dockerfile eclipse-mosquitto:2"
  "prometheus.Dockerfile prom/prometheus:v2.53.0"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# the base is made again only when this recipe changes (its label says which it was made from)
debootstrap_args=(--variant=minbase --include=ca-certificates bookworm "$work/root" "$mirror")
recipe="debootstrap ${debootstrap_args[*]/#$work/}"
made_from="$(docker image inspect -f '{{index .Config.Labels "hanport.standin.recipe"}}' "$base" 2>/dev/null || true)"
if [ "$made_from" != "$recipe" ]; then
  echo "images: debootstrap bookworm (minbase) from $mirror"
  debootstrap "${debootstrap_args[@]}" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  tar -C "$work/root" -c . \
    | docker import -c 'CMD ["bash"]' -c "LABEL hanport.standin.recipe=\"$recipe\"" - "$base" >/dev/null
  rm -rf "$work/root"
fi

# the build context: this folder plus the host's CA bundle (for pip behind a TLS proxy)
mkdir "$work/context"
cp "$here"/*.Dockerfile "$here"/*.sh "$work/context/"
cp /etc/ssl/certs/ca-certificates.crt "$work/context/host-ca-certificates.crt"
# all at once: each mostly waits for the package archive
builds=()
for entry in "${standins[@]}"; do
  read -r dockerfile tag <<<"$entry"
  echo "images: $tag"
  DOCKER_BUILDKIT=0 docker build -q --network host -f "$work/context/$dockerfile" -t "$tag" \
    "$work/context" >"$work/$dockerfile.log" 2>&1 &
  builds+=("$! $tag $dockerfile")
done
failed=0
for build in "${builds[@]}"; do
  read -r pid tag dockerfile <<<"$build"
  if ! wait "$pid"; then
    echo "images: building $tag failed:" >&2
    tail -20 "$work/$dockerfile.log" >&2
    failed=1
  fi
done
exit "$failed"
