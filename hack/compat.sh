#!/bin/sh
# make compat: podops' unit suite and an integration subset on another platform, inside a Debian system container
# (systemd as PID 1, podman and Python as that Debian ships them), once with the pinned ansible-core and once
# with the newest one pip offers there. The image is built with debootstrap and cached by recipe hash
# (tests/images/compat/build.sh); the container, its network and its storage volume are this checkout's own
# (podops-compat-<suite>-<checkout id>) and are removed afterwards.
# Usage: sh hack/compat.sh [suite]   suite: trixie (Debian 13, default; part of make test) or forky (Debian testing)
#   PODOPS_COMPAT_TESTS   integration test files of the pinned lane (default: the representative subset below)
#   PODOPS_COMPAT_NEWEST_TESTS   those of the newest lane (default: a smaller subset)
#   PODOPS_COMPAT_LANES   "pinned newest" (default), or one of them
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
suite=${1:-${SUITE:-trixie}}
# plan, deploy, rollback and the health gate with real healthchecks, drift and images, prune and inputs, vault,
# blue-green, compose features (depends_on conditions), the fast lane, and the shim's run (signed push -> deploy)
default_tests="tests/integration/test_reconcile.py tests/integration/test_failures.py tests/integration/test_images_and_drift.py
tests/integration/test_prune_and_inputs.py tests/integration/test_vault.py tests/integration/test_blue_green.py
tests/integration/test_compose_features.py tests/integration/test_depends_on.py tests/integration/test_pull_lane.py tests/integration/test_webhook_gate.py"
tests=$(printf '%s' "${PODOPS_COMPAT_TESTS:-$default_tests}" | tr -s ' \n' '  ')
# the newest ansible-core: the engine's paths through ansible-playbook (reconcile, failures and rollback, vault)
newest_tests=$(printf '%s' "${PODOPS_COMPAT_NEWEST_TESTS:-tests/integration/test_reconcile.py tests/integration/test_failures.py tests/integration/test_vault.py}" | tr -s ' \n' '  ')
lanes=${PODOPS_COMPAT_LANES:-pinned newest}
id=$(printf %s "$top" | sha1sum | cut -c1-8)
name="podops-compat-$suite-$id"
# 10.214.<16..239>.0/24 from the id: nested podman's 10.88.0.0/16 does not clash, nor (mostly) another checkout's
octet=$(( 16 + $(printf '%d' "0x$(echo "$id" | cut -c1-4)") % 224 ))
start=$(date +%s)

image=$(sh tests/images/compat/build.sh "$suite")
. "$top/hack/systemd-lock.sh"
podops_systemd_lock compat
cleanup() {
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    podman network rm -f "$name" >/dev/null 2>&1 || true
    podman volume rm -f "$name" >/dev/null 2>&1 || true
}
cleanup
trap cleanup EXIT
podman network create --subnet "10.214.$octet.0/24" "$name" >/dev/null
podman volume create "$name" >/dev/null
podman run -d --name "$name" --privileged --systemd=always --cgroupns=private --hostname "compat-$suite" \
    --network "$name" -v "$name:/var/lib/containers" "$image" >/dev/null
# systemd is up when is-system-running answers running (or degraded: a unit a container cannot run)
# (the first execs can come before systemd answers at all: ask again until a deadline)
deadline=$(( $(date +%s) + 180 ))
state=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(timeout 60 podman exec "$name" systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in running|degraded) break;; esac
    sleep 1
done
case "$state" in
    running|degraded) ;;
    *) echo "compat: the $suite container did not boot (systemctl is-system-running: ${state:-no answer})" >&2; exit 1;;
esac
# This network's TLS trust (its CA certificates and pip configuration), so pip inside reaches the index as here.
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] || continue
    podman cp "$crt" "$name:/usr/local/share/ca-certificates/"
done
timeout 60 podman exec "$name" update-ca-certificates >/dev/null 2>&1 || true
if [ -f /etc/pip.conf ]; then podman cp /etc/pip.conf "$name:/etc/pip.conf"; fi
# The checkout as it is (tracked and untracked files, not .gitignored ones such as .venv and .work).
git ls-files -z --cached --others --exclude-standard | tar --null -T - -c |
    timeout 120 podman exec -i "$name" sh -c 'mkdir -p /src && tar -C /src -x'
timeout 900 podman exec -e PODOPS_SETUP_BROWSER=0 "$name" sh -c 'cd /src && make setup' >"$top/.work/compat-$suite-setup.log" 2>&1 ||
    { tail -n 30 "$top/.work/compat-$suite-setup.log" >&2; echo "compat: make setup failed in the $suite container" >&2; exit 1; }
rc=0
timeout 3000 podman exec -e PODOPS_COMPAT_TESTS="$tests" -e PODOPS_COMPAT_NEWEST_TESTS="$newest_tests" -e PODOPS_COMPAT_LANES="$lanes" "$name" sh /src/tests/images/compat/suite.sh || rc=$?
echo "compat: $suite finished rc=$rc in $(( $(date +%s) - start ))s"
exit "$rc"
