#!/bin/sh
# make demo: turn examples/env-repo into a real git repo under .work/demo and reconcile it on localhost.
# Running it again changes nothing (the play reports ok, every service unchanged).
set -eu
cd "$(dirname "$0")/.."
. hack/env.sh
demo="$top/.work/demo"
repo="$demo/env-repo"
mkdir -p "$demo"
if [ ! -d "$repo/.git" ]; then
    cp -r examples/env-repo "$repo"
    git -C "$repo" init -q -b main
    git -C "$repo" add -A
    git -C "$repo" -c user.name=podops-demo -c user.email=demo@podops.invalid commit -q -m "demo env repo"
fi
# The host-local secret the notes service reads from ../../secrets/notes.env (never committed).
[ -f "$repo/secrets/notes.env" ] || { cp "$repo/services/notes/notes.env.example" "$repo/secrets/notes.env"; chmod 600 "$repo/secrets/notes.env"; }

ansible-playbook podops.gitops.reconcile \
    -e podops_repo_dir="$repo" \
    -e podops_state_dir="$demo/state" \
    -e podops_project_prefix=demo- \
    -e podops_trigger=cli
echo
echo "env repo: $repo (edit a file, commit, and run 'make demo' again)"
echo "run report: $demo/state/last-run.json"
