#!/usr/bin/env bash
# End-to-end tests of docker-compose.yml and docker-compose.cluster.yml (see
# deploy/compose_test.py and deploy/compose_cluster_test.py for what they
# check). Skips, saying so, when Docker does not answer. Provides what the
# test needs first:
#   - the base images: pulled, or where nothing can be pulled, local stand-ins
#     built by deploy/local-images.sh;
#   - the crates for the image build, vendored from this machine's cargo
#     (deploy/vendor-crates.sh) so the build needs no network; set
#     TALLY_VENDOR_CRATES=no to let the build fetch from crates.io instead;
#   - a Python venv with httpx and websockets (TALLY_TEST_VENV, default
#     /var/tmp/tally-compose-test-venv).
# The image is built with the quick-release Cargo profile (no LTO: these tests
# check behaviour, and tally's own crate builds in 39 s that way against 2 min
# with fat LTO on 2 cores); set
# TALLY_CARGO_PROFILE=release to test the image exactly as users build it.
# Bounded: the whole run stops after TALLY_COMPOSE_TEST_TIMEOUT seconds (2400:
# a cold image build on 2 busy cores takes most of it; a warm run ~2 min;
# the cluster scenario has its own bound, TALLY_COMPOSE_CLUSTER_TEST_TIMEOUT, 600).
#
# Usage: deploy/compose-test.sh [--keep] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "compose-test: SKIPPED: Docker does not answer here ('docker info' failed)"
  exit 0
fi

missing=()
for image in debian:bookworm-slim rust:1-slim-bookworm redis:7 haproxy:2.6 prom/prometheus:v2.42.0; do
  docker image inspect "$image" >/dev/null 2>&1 ||
    docker pull -q "$image" >/dev/null 2>&1 ||
    missing+=("$image")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "compose-test: cannot pull ${missing[*]}; building local stand-ins"
  deploy/local-images.sh
fi

case "${TALLY_VENDOR_CRATES:-auto}" in
  no) ;;
  yes) deploy/vendor-crates.sh ;;
  *) if command -v cargo >/dev/null; then deploy/vendor-crates.sh; fi ;;
esac

venv=${TALLY_TEST_VENV:-/var/tmp/tally-compose-test-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import httpx, websockets' 2>/dev/null ||
  "$venv/bin/pip" install -q 'httpx>=0.27,<1' 'websockets>=13,<18'

export TALLY_CARGO_PROFILE=${TALLY_CARGO_PROFILE:-quick-release}

# Then the cluster file (deploy/compose_cluster_test.py), on the image the
# first scenario built; both must pass. --keep is not passed on: two stacks
# would hold the image's ports and names for nothing.
rc=0
timeout --signal=TERM --kill-after=60 "${TALLY_COMPOSE_TEST_TIMEOUT:-2400}" \
  "$venv/bin/python" deploy/compose_test.py "$@" || rc=1
timeout --signal=TERM --kill-after=60 "${TALLY_COMPOSE_CLUSTER_TEST_TIMEOUT:-600}" \
  "$venv/bin/python" deploy/compose_cluster_test.py || rc=1
exit $rc
