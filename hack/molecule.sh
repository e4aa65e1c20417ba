#!/bin/sh
# make molecule: one molecule scenario (MOLECULE_SCENARIO, e.g. default or rootless) or, without it, every one
# (molecule/*/molecule.yml), offline, with the time it took. The scenarios create and remove their own podman
# containers, network and volume (all named podops-mol-*).
# Usage: [MOLECULE_SCENARIO=rootless] sh hack/molecule.sh [molecule test arguments, e.g. --destroy never]
set -eu
cd "$(dirname "$0")/.."
export MOLECULE_GLOB="${MOLECULE_GLOB:-molecule/*/molecule.yml}"
command -v molecule >/dev/null 2>&1 || { echo "molecule: not found (run make setup)" >&2; exit 1; }
. hack/systemd-lock.sh
podops_systemd_lock molecule
start=$(date +%s)
rc=0
if [ -n "${MOLECULE_SCENARIO:-}" ]; then
    molecule test -s "$MOLECULE_SCENARIO" "$@" || rc=$?
else
    molecule test --all "$@" || rc=$?
fi
echo "molecule: ${MOLECULE_SCENARIO:-all scenarios} finished rc=$rc in $(( $(date +%s) - start ))s"
exit "$rc"
