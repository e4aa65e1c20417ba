#!/bin/sh
# Make this machine ready for `make demo` and `make test`; idempotent and quick when already done.
#  - podman, runc, git, busybox-static, docker-registry, nginx-light, chromium + chromium-driver, systemd
#    (systemd-analyze), debootstrap, openssh-client, openssh-server through apt when missing (as root; otherwise say what to install)
#  - a venv (.venv) from the pinned requirements.txt
#  - the collection on ANSIBLE_COLLECTIONS_PATH (.work/collections, a symlink to this checkout)
#  - the tiny demo image localhost/podops-demo:1, built locally
#  - the containers.conf workaround, only where a probe shows podman needs it (.work/podman.env)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
work="$top/.work"
mkdir -p "$work"

missing=""
command -v podman >/dev/null 2>&1 || missing="$missing podman"
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v busybox >/dev/null 2>&1 || missing="$missing busybox-static"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
# nginx: the reverse proxy the blue-green tests switch (a real one, reloaded gracefully)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
# the molecule server image is built from Debian packages (tests/images/server/build.sh)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
# molecule reaches its test server over SSH
command -v ssh-keygen >/dev/null 2>&1 || missing="$missing openssh-client"
# the fleet tests and benchmark run one sshd per simulated host on loopback (tests/integration/fleet_helpers.py)
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
[ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || missing="$missing runc"
# the webhook shim's tests: its status page in Debian's headless Chromium, its unit file through systemd-analyze
# (PODOPS_SETUP_BROWSER=0: no browser, for the compatibility containers of hack/compat.sh, which run no browser test)
if [ "${PODOPS_SETUP_BROWSER:-1}" != 0 ]; then
    [ -x /usr/bin/chromium ] || missing="$missing chromium"
    [ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
fi
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing$missing"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "setup: please install:$missing (for example: sudo apt-get install$missing)" >&2
        exit 1
    fi
fi

if [ ! -f .venv/.podops-stamp ] || [ -n "$(find requirements.txt -newer .venv/.podops-stamp)" ]; then
    echo "setup: creating .venv from requirements.txt"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    touch .venv/.podops-stamp
fi

mkdir -p "$work/collections/ansible_collections/podops"
ln -sfn "$top" "$work/collections/ansible_collections/podops/gitops"

tests/images/build.sh 1 >/dev/null

# Probe: does podman run containers here as configured? If not, try the known-good containers.conf.
# (Our own CONTAINERS_CONF, exported by hack/env.sh in this shell, must not make the probe pass.)
if [ "${CONTAINERS_CONF:-}" = "$work/containers.conf" ]; then
    unset CONTAINERS_CONF
fi
: > "$work/podman.env"
if ! podman run --rm localhost/podops-demo:1 true >/dev/null 2>&1; then
    cat > "$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    if CONTAINERS_CONF="$work/containers.conf" podman run --rm localhost/podops-demo:1 true >/dev/null 2>&1; then
        echo "CONTAINERS_CONF=$work/containers.conf" > "$work/podman.env"
        echo "setup: podman needs $work/containers.conf here (runc, cgroupfs, ulimits); using it through CONTAINERS_CONF"
    else
        echo "setup: podman cannot run containers on this machine, even with $work/containers.conf:" >&2
        CONTAINERS_CONF="$work/containers.conf" podman run --rm localhost/podops-demo:1 true >&2 || true
        exit 1
    fi
fi
