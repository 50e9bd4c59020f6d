#!/usr/bin/env bash
# Vendors every crate of Cargo.lock into deploy/cargo/vendor and writes
# deploy/cargo/config.toml, so that deploy/Dockerfile builds without reaching
# crates.io (see deploy/cargo/README.md). Run it again after Cargo.lock changes.
#
# Usage: deploy/vendor-crates.sh [--clean]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=deploy/cargo
rm -rf "$dir/vendor" "$dir/config.toml"
[ "${1:-}" = "--clean" ] && exit 0
cargo vendor --quiet --locked --versioned-dirs "$dir/vendor" >/dev/null
# The Dockerfile copies this folder to /src/.cargo; a relative directory is
# taken from /src, the parent of .cargo.
cat >"$dir/config.toml" <<'TOML'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = ".cargo/vendor"
TOML
echo "vendor-crates: $(find "$dir/vendor" -mindepth 1 -maxdepth 1 | wc -l) crates in $dir/vendor ($(du -sh "$dir/vendor" | cut -f1))" >&2
