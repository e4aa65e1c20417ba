#!/usr/bin/env bash
# The baseline podops is compared with: the seed's deploy-all-changed.sh reduced to its loop
# (shared/research/seed-blogpost.md). For each services/* folder: hash the folder's files, compare with the
# hash of the last deploy, and when it differs `podman-compose down` then `up -d`, one service at a time.
# When nothing changed this is exactly "a bash loop that hashes each folder" - the no-op reference.
#
# Differences from the seed, all to make it a fair, isolated benchmark:
#  - the hash covers every file of the folder (find | sort | xargs cat | sha256sum), not only the compose
#    and env files, so it redeploys on the same changes podops does;
#  - hashes live in $PODOPS_BENCH_STATE, not in the env repo (the harness gives each run a scratch dir);
#  - compose projects are named $PODOPS_BENCH_PREFIX<service>, so its containers never meet anyone else's;
#  - a failed `up` is reported (exit 1) and its hash is not recorded, so the next run retries it.
# No health wait, no rollback, no lock, no report: that is what the comparison is about.
#
# Environment: PODOPS_BENCH_REPO (env repo checkout), PODOPS_BENCH_STATE (scratch dir for hashes),
# PODOPS_BENCH_PREFIX (compose project prefix, may be empty). podman-compose comes from PATH.
set -u

repo=${PODOPS_BENCH_REPO:?PODOPS_BENCH_REPO must name the env repo checkout}
state=${PODOPS_BENCH_STATE:?PODOPS_BENCH_STATE must name a scratch folder}
prefix=${PODOPS_BENCH_PREFIX:-}

mkdir -p "$state"
cd "$repo" || exit 1

rc=0
for dir in services/*/; do
    dir=${dir%/}
    name=${dir##*/}
    hash=$(find "$dir" -type f -print0 | sort -z | xargs -0 cat | sha256sum)
    hash=${hash%% *}
    hash_file="$state/$name.hash"
    if [[ -f "$hash_file" && "$hash" == "$(<"$hash_file")" ]]; then
        continue
    fi
    echo "[baseline] $name changed: redeploying as project $prefix$name"
    pushd "$dir" >/dev/null || exit 1
    podman-compose -p "$prefix$name" down
    if podman-compose -p "$prefix$name" up -d; then
        echo "$hash" >"$hash_file"
    else
        echo "[baseline] $name: podman-compose up failed" >&2
        rc=1
    fi
    popd >/dev/null || exit 1
done
exit "$rc"
