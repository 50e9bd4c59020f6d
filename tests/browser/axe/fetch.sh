#!/usr/bin/env bash
# Puts axe-core 4.10.2 (axe.min.js) at target/axe/axe.min.js for the
# accessibility browser test (tests/browser/a11y.rs), without npm: it is taken
# out of the PyPI wheel axe-selenium-python 3.0.0, which ships it. The wheel
# declares Python >= 3.12, so pip is asked for the 3.12 wheel explicitly (the
# wheel is pure Python; nothing of it is installed or run). Both the wheel and
# the file are checked against pinned sha256 sums; a mismatch fails.
# Usage: tests/browser/axe/fetch.sh [OUT_DIR]   (default: target/axe)
set -euo pipefail
cd "$(dirname "$0")/../../.."

WHEEL=axe_selenium_python-3.0.0-py3-none-any.whl
WHEEL_SHA256=847e3925861133a523609ff27d0fef387e7588a26f23a27c208a30682b8e9240
AXE_PATH=axe_selenium_python/node_modules/axe-core/axe.min.js
AXE_SHA256=b511cd9dec01c76f4b2ad1723b66b6db37d4c2eb4ed199076e1829d9ee7b75e3

out="${1:-${CARGO_TARGET_DIR:-target}/axe}"
dest="$out/axe.min.js"
if [ -f "$dest" ] && echo "$AXE_SHA256  $dest" | sha256sum --check --status; then
  exit 0
fi
mkdir -p "$out"
tmp="$(mktemp -d "$out/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# pip itself: the system's, else a venv's (Debian's python3 may come without
# pip; scripts/test installs python3-venv).
pip=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
  [ -x "$out/venv/bin/pip" ] || python3 -m venv "$out/venv" >&2
  pip=("$out/venv/bin/pip")
fi
"${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.12 \
  axe-selenium-python==3.0.0 -d "$tmp" >&2
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet
python3 - "$tmp/$WHEEL" "$AXE_PATH" "$tmp/axe.min.js" <<'PY'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(dest, "wb") as f:
    f.write(z.read(member))
PY
echo "$AXE_SHA256  $tmp/axe.min.js" | sha256sum --check --quiet
# Atomic: tests running at once never read half a file.
mv "$tmp/axe.min.js" "$dest"
echo "fetch.sh: axe-core 4.10.2 at $dest" >&2
