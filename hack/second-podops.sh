#!/bin/sh
# A second podops on this host, for checking that the tests observe only what they started: real reconciles
# in a loop (a service with depends_on deployed, redeployed, pruned and put back), with an env repo, a state
# folder and a project prefix of its own. Run it beside `make integration`; stop it with `touch <dir>/stop`.
# Usage: sh hack/second-podops.sh [dir (default /tmp/podops-second)] [prefix (default second-)]
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=hack/env.sh
. hack/env.sh
base=${1:-/tmp/podops-second}
prefix=${2:-second-}
repo=$base/repo
state=$base/state
rm -rf "$repo" "$state" "$base/stop"
mkdir -p "$repo"
git -C "$repo" init -q -b main
git -C "$repo" config user.email second@podops.invalid
git -C "$repo" config user.name "second podops"
write() { # service, content
    mkdir -p "$repo/services/$1/site"
    printf '%s\n' "x-podops:" "  health: {timeout: 30, samples: 2, interval: 0.3}" "services:" \
        "  a:" "    image: localhost/podops-demo:1" '    volumes: ["./site:/www:ro"]' \
        "  b:" "    image: localhost/podops-demo:1" "    depends_on: [a]" > "$repo/services/$1/compose.yaml"
    echo "$2" > "$repo/services/$1/site/index.html"
}
vars="{\"podops_repo_dir\": \"$repo\", \"podops_state_dir\": \"$state\", \"podops_project_prefix\": \"$prefix\", \"podops_prune\": true}"
i=0
while [ ! -e "$base/stop" ]; do
    i=$((i + 1))
    write one "one $i"
    if [ $((i % 3)) -eq 0 ]; then rm -rf "$repo/services/two"; else write two "two $i"; fi
    git -C "$repo" add -A
    git -C "$repo" commit -q -m "iteration $i"
    ansible-playbook podops.gitops.reconcile -e "$vars" > "$base/run.log" 2>&1
    rc=$?
    echo "$(date +%T) run $i rc=$rc $(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["result"], {k: v["action"] for k, v in r["services"].items()})' "$state/last-run.json")" >> "$base/runs.log"
    [ "$rc" -eq 0 ] || cp "$base/run.log" "$base/run-$i-failed.log"
done
# Its own containers and networks only (by its prefix); b requires a, so repeat: dependents go first.
for _attempt in 1 2 3; do
    ids=$(podman ps -aq --filter "label=io.podops.prefix=$prefix")
    [ -n "$ids" ] || break
    # shellcheck disable=SC2086 # one ID a word
    podman rm -f -t 0 $ids > /dev/null 2>&1
done
podman network ls -q --filter "label=io.podman.compose.project" --format '{{.Name}}' | grep "^$prefix" | xargs -r podman network rm > /dev/null
echo "second podops: $i runs, $(grep -vc ' rc=0 ' "$base/runs.log") failed (see $base/runs.log)"
