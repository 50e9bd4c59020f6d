#!/usr/bin/env bash
# Validates deploy/k8s/*.yaml against the Kubernetes API schemas, offline:
# kubernetes-validate (PyPI) ships the schemas of each Kubernetes release.
# Strict: an unknown or misspelt field fails. Also checks that
# kustomization.yaml lists every manifest and nothing else.
#
# Usage: deploy/validate-k8s.sh [KUBERNETES_VERSION]   (default 1.30.0)
# Env:   TALLY_K8S_VENV (default /var/tmp/tally-k8s-venv)
set -euo pipefail
cd "$(dirname "$0")/k8s"
version=${1:-1.30.0}

venv=${TALLY_K8S_VENV:-/var/tmp/tally-k8s-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv/bin/kubernetes-validate" ] || "$venv/bin/pip" install -q 'kubernetes-validate>=1.30'

manifests=$(find . -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -printf '%f\n' | sort)
listed=$(sed -n 's/^  - \(.*\.yaml\)$/\1/p' kustomization.yaml | sort)
if [ "$listed" != "$(echo "$manifests" | sort)" ]; then
  echo "validate-k8s: kustomization.yaml lists [$listed], the folder has [$manifests]" >&2
  echo "validate-k8s: 0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC2086 # one argument per manifest
if "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" $manifests; then
  echo "validate-k8s: $(echo $manifests | wc -w) passed, 0 failed (Kubernetes $version, strict)"
else
  echo "validate-k8s: 0 passed, 1 failed"
  exit 1
fi
