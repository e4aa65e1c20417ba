#!/bin/sh
# Build the tiny demo/test image localhost/podops-demo:<tag> from the host's static busybox - no registry needed.
# Its default command serves /www on 8080 and stops at once on SIGTERM (busybox httpd as PID 1 would not).
# With a second argument "broken" the image serves nothing (for health-gate tests).
set -eu
tag="${1:-1}"
variant="${2:-serve}"
image="localhost/podops-demo:${tag}"
cmd='["sh", "-c", "trap \"exit 0\" TERM; httpd -f -p 8080 -h /www & wait"]'
[ "$variant" = broken ] && cmd='["sh", "-c", "trap \"exit 0\" TERM; sleep 100000 & wait"]'
if podman image exists "$image" && [ "${FORCE:-0}" != 1 ]; then
    exit 0
fi
busybox=$(command -v busybox)
[ -n "$busybox" ] || { echo "busybox is missing: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/data"
cp "$busybox" "$root/bin/busybox"
for tool in sh httpd sleep echo cat wget true false mkdir ls env kill; do ln -s busybox "$root/bin/$tool"; done
echo "podops demo ${tag}" > "$root/www/index.html"
tar -C "$root" -c . | podman import -q \
    --change 'ENV PATH=/bin' \
    --change "CMD $cmd" \
    - "$image" >/dev/null
echo "built $image"
