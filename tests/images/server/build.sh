#!/bin/sh
# Build the systemd "server" image that plays a fresh Debian 12 host in the molecule scenarios:
# debootstrap (minbase + packages.txt) from the Debian mirror the machine uses, imported into podman.
# The tag is a hash of this recipe, so the image is built once and reused until the recipe changes.
# Prints the image name on stdout. Needs root and debootstrap (installed with apt when missing).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
suite=${PODOPS_SERVER_SUITE:-bookworm}
tag=$(cat "$here/build.sh" "$here/packages.txt" | sha256sum | cut -c1-12)
image="localhost/podops-server:$tag"
if podman image exists "$image"; then
    echo "$image"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "server image: installing debootstrap" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    else
        echo "server image: debootstrap is missing (apt-get install debootstrap, as root)" >&2
        exit 1
    fi
fi
# The mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
include=$(grep -v '^#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
root=$(mktemp -d /var/tmp/podops-server-root.XXXXXX)
cleanup() {
    for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
    rm -rf "$root"
}
trap cleanup EXIT
echo "server image: debootstrap $suite from $mirror ($include)" >&2
debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
# A server: sshd on, root login by key only, no apt caches, a machine-id made at first boot.
ln -sf /lib/systemd/system/ssh.service "$root/etc/systemd/system/multi-user.target.wants/ssh.service"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\n' >"$root/etc/ssh/sshd_config.d/podops-test.conf"
# Host keys are made per container at first boot, before sshd starts.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/podops-test-sshkeys.service" <<'UNIT'
[Unit]
Description=Generate the SSH host keys of this test server
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/podops-test-sshkeys.service "$root/etc/systemd/system/multi-user.target.wants/podops-test-sshkeys.service"
: >"$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | podman import -q \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$image" >/dev/null
echo "$image"
