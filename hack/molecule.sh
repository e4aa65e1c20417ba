#!/bin/sh
# make molecule: every molecule scenario (molecule/*/molecule.yml), offline, with the time it took.
# The scenarios create and remove their own podman containers, network and volume (all named podops-mol-*).
# Usage: sh hack/molecule.sh [molecule test arguments, e.g. --destroy never]
set -eu
cd "$(dirname "$0")/.."
export MOLECULE_GLOB="${MOLECULE_GLOB:-molecule/*/molecule.yml}"
command -v molecule >/dev/null 2>&1 || { echo "molecule: not found (run make setup)" >&2; exit 1; }
start=$(date +%s)
rc=0
molecule test --all "$@" || rc=$?
echo "molecule: finished rc=$rc in $(( $(date +%s) - start ))s"
exit "$rc"
