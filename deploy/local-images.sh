#!/usr/bin/env bash
# Builds local stand-ins for every image that docker-compose.yml and
# deploy/Dockerfile name, for a machine whose Docker cannot pull from a
# registry (no Docker Hub) but reaches Debian's package mirror:
#
#   debian:bookworm-slim   a Debian bookworm minbase made by debootstrap and
#                          slimmed like the official image, via `docker import`
#   rust:1-slim-bookworm   that base + gcc, with this machine's Rust toolchain
#   redis:7                that base + Debian's redis-server (7.0)
#   haproxy:2.6            that base + Debian's haproxy (2.6)
#   prom/prometheus:v2.42.0  that base + Debian's prometheus (2.42), for the
#                          compose file's `monitoring` profile
#
# Each stand-in is used the way the official image is (paths, users, entry
# points), so docker-compose.yml and deploy/Dockerfile stay unchanged. An image
# that already exists is kept; --force rebuilds them all.
#
# Usage: deploy/local-images.sh [--force]     (as root: debootstrap needs it)
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian)
#        TALLY_IMAGES_WORKDIR (default /var/tmp/tally-local-images): rootfs and
#        build contexts, kept between runs.
set -euo pipefail
cd "$(dirname "$0")"

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORKDIR=${TALLY_IMAGES_WORKDIR:-/var/tmp/tally-local-images}
MIN_RUST=1.88
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "local-images: $*" >&2; }
die() { log "error: $*"; exit 1; }
present() { [ "$FORCE" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
build() { # build TAG DIR: the classic builder, quietly, failing loudly
  local tag=$1 dir=$2 out
  out=$(mktemp)
  if ! DOCKER_BUILDKIT=0 docker build --quiet -t "$tag" "$dir" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; die "building $tag failed"
  fi
  rm -f "$out"
}

# debian:bookworm-slim: debootstrap minbase, then what the official slim image
# drops (docs, man pages, locales, apt lists), kept out of later installs too.
base_image() {
  local tag=debian:bookworm-slim rootfs=$WORKDIR/rootfs
  present "$tag" && { log "$tag present"; return; }
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  log "debootstrap bookworm from $MIRROR"
  rm -rf "$rootfs"; mkdir -p "$WORKDIR"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORKDIR/debootstrap.log" 2>&1 ||
    { tail -20 "$WORKDIR/debootstrap.log" >&2; die "debootstrap failed"; }
  slim "$rootfs"
  log "importing $tag"
  tar -C "$rootfs" --numeric-owner -c . |
    docker import --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$tag" >/dev/null
}

slim() {
  local r=$1
  cat >"$r/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  rm -rf "$r"/usr/share/{man,info,locale,groff,lintian,linda}/* \
    "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/*
}

# rust:1-slim-bookworm: this machine's toolchain (rustup's or any other whose
# sysroot holds bin/cargo), since no toolchain can be downloaded here.
rust_image() {
  local tag=rust:1-slim-bookworm ctx=$WORKDIR/rust sysroot version
  present "$tag" && { log "$tag present"; return; }
  command -v rustc >/dev/null || die "no rustc on this machine to copy into $tag"
  sysroot=$(rustc --print sysroot)
  version=$(rustc --version | awk '{print $2}')
  [ -x "$sysroot/bin/cargo" ] || die "no cargo beside rustc in $sysroot"
  [ "$(printf '%s\n%s\n' "$MIN_RUST" "$version" | sort -V | head -1)" = "$MIN_RUST" ] ||
    die "rustc $version is older than $MIN_RUST (Cargo.toml's rust-version)"
  log "staging Rust $version from $sysroot"
  rm -rf "$ctx"; mkdir -p "$ctx/toolchain/bin"
  cp local-images/rust/Dockerfile "$ctx/"
  cp -a "$sysroot"/bin/{cargo,rustc,rustdoc} "$ctx/toolchain/bin/"
  cp -al "$sysroot/lib" "$ctx/toolchain/lib" 2>/dev/null || cp -a "$sysroot/lib" "$ctx/toolchain/lib"
  log "building $tag"
  build "$tag" "$ctx"
}

service_image() { # service_image TAG DIR: a stand-in from deploy/local-images/DIR
  present "$1" && { log "$1 present"; return; }
  log "building $1"
  build "$1" "local-images/$2"
}

docker info >/dev/null 2>&1 || die "docker is not answering"
base_image
rust_image
service_image redis:7 redis
service_image haproxy:2.6 haproxy
service_image prom/prometheus:v2.42.0 prometheus
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
  grep -E '^(debian:bookworm-slim|rust:1-slim-bookworm|redis:7|haproxy:2.6|prom/prometheus:v2.42.0)\b' >&2
