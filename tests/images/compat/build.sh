#!/bin/sh
# Build the image of one compatibility platform (hack/compat.sh): debootstrap <suite> (minbase + packages.txt) from
# the Debian mirror this machine uses, imported into podman with systemd as its command. Tagged by a hash of the
# recipe and the suite, so it is built once per recipe and reused. Prints the image name on stdout.
# Usage: build.sh <suite>   (trixie = Debian 13, forky = Debian testing)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
suite=${1:?usage: build.sh <suite> (trixie, forky)}
case "$suite" in *[!a-z]*) echo "compat image: suite must be a Debian code name (trixie, forky), not $suite" >&2; exit 2;; esac
defaults="$here/../../../roles/podman_host/defaults/main.yml"
tag=$( (cat "$here/build.sh" "$here/packages.txt" "$defaults"; echo "$suite") | sha256sum | cut -c1-12)
image="localhost/podops-compat-$suite:$tag"
if podman image exists "$image"; then
    echo "$image"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] ||
    { echo "compat image: debootstrap is missing (make setup installs it)" >&2; exit 1; }
# The mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/podops-compat-root.XXXXXX)
base="localhost/podops-compat-$suite-base:$tag"
cleanup() {
    for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
    rm -rf "$root" "$root.log"
    podman rm -f -t 0 "podops-compat-build-$tag" >/dev/null 2>&1 || true
    podman rmi -f "$base" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# 1. debootstrap a minimal system with systemd (no time limit of its own: a stalled mirror must not hold CI)
echo "compat image: debootstrap $suite from $mirror" >&2
timeout 900 debootstrap --variant=minbase --include=python3,systemd,systemd-sysv,dbus,ca-certificates "$suite" "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
printf 'deb %s %s main\n' "$mirror" "$suite" >"$root/etc/apt/sources.list"
tar -C "$root" -c . | podman import -q - "$base" >/dev/null
# 2. the packages with apt, as on a real host (debootstrap's own configuration of many packages is fragile)
host_packages=$(sed -n '/^podops_host_packages:/,/^[^ ]/s/^  - //p' "$defaults" | tr -s ' \n' ' ')
packages="$host_packages $(grep -v '^#' "$here/packages.txt" | tr -s ' \n' ' ')"
echo "compat image: apt-get install $packages" >&2
# shellcheck disable=SC2086
timeout 1200 podman run --name "podops-compat-build-$tag" --network host "$base" sh -c \
    "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null &&
     apt-get clean && rm -rf /var/lib/apt/lists/* && : > /etc/machine-id" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; exit 1; }
podman commit -q \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    "podops-compat-build-$tag" "$image" >/dev/null
echo "$image"
