#!/bin/sh
# Build the tiny demo/test image localhost/podops-demo:<tag> from the host's static busybox - no registry needed.
# Its default command serves /www on 8080 and stops at once on SIGTERM (busybox httpd as PID 1 would not).
set -eu
tag="${1:-1}"
image="localhost/podops-demo:${tag}"
if podman image exists "$image" && [ "${FORCE:-0}" != 1 ]; then
    exit 0
fi
busybox=$(command -v busybox)
[ -n "$busybox" ] || { echo "busybox is missing: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/data"
cp "$busybox" "$root/bin/busybox"
for cmd in sh httpd sleep echo cat wget true false mkdir ls env kill; do ln -s busybox "$root/bin/$cmd"; done
echo "podops demo ${tag}" > "$root/www/index.html"
tar -C "$root" -c . | podman import -q \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh", "-c", "trap \"exit 0\" TERM; httpd -f -p 8080 -h /www & wait"]' \
    - "$image" >/dev/null
echo "built $image"
