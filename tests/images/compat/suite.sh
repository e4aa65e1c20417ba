#!/bin/sh
# Runs INSIDE a compatibility container (hack/compat.sh copies the checkout to /src): the venv from the pinned
# requirements on this platform's Python, the unit suite and the integration subset, then the same again with the
# newest ansible-core pip offers for this Python (with its own consistent `ansible` bundle).
# Prints one "compat:" line per lane: platform, versions, test counts, result.
set -u
cd /src || exit 1
pinned_tests=${PODOPS_COMPAT_TESTS:?}
newest_tests=${PODOPS_COMPAT_NEWEST_TESTS:-$pinned_tests}
lanes=${PODOPS_COMPAT_LANES:-pinned newest}
platform="$(. /etc/os-release && echo "$PRETTY_NAME"), $(podman --version), $(python3 --version), systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
rc=0
for lane in $lanes; do
    if [ "$lane" = newest ]; then
        # The newest ansible-core with the newest bundle that fits it; everything else stays pinned.
        grep -v -E '^(ansible|ansible-core|ansible-compat|ansible-lint|molecule)==' requirements.txt > /tmp/requirements-newest.txt
        timeout 900 .venv/bin/pip install -q --disable-pip-version-check -U -r /tmp/requirements-newest.txt ansible ansible-core ||
            { echo "compat: $platform | lane newest: pip could not install the newest ansible-core"; rc=1; continue; }
    fi
    core=$(.venv/bin/python -c 'import ansible.release as r; print(r.__version__)' 2>/dev/null)
    compose=$(.venv/bin/podman-compose --version 2>/dev/null | sed -n 's/^podman-compose version \(.*\)$/\1/p' | head -n 1)
    lane_rc=0
    summary=""
    # two sessions, as make unit and make integration run them (each suite has its own conftest)
    for part in unit integration; do
        paths=tests/unit
        if [ "$part" = integration ]; then
            [ "$lane" = newest ] && paths=$newest_tests || paths=$pinned_tests
        fi
        out=/tmp/compat-$lane-$part.log
        # shellcheck disable=SC2086
        if ! (. hack/env.sh && timeout 2400 python -m pytest -p no:cacheprovider -q -rfE $paths) >"$out" 2>&1; then
            lane_rc=1
            tail -n 80 "$out"
        fi
        summary="$summary $part: $(tail -n 1 "$out" | sed 's/=//g; s/^ *//; s/ *$//');"
    done
    echo "compat: $platform | ansible-core $core, podman-compose $compose | lane $lane |$summary rc=$lane_rc"
    [ "$lane_rc" = 0 ] || rc=1
done
exit "$rc"
