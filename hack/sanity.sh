#!/bin/sh
# ansible-test sanity for podops.gitops, offline-friendly (PyPI through /etc/pip.conf is enough).
#  1. fresh copy of the collection (git-tracked + untracked-but-not-ignored files) into
#     .work/sanity/ansible_collections/podops/gitops - ansible-test refuses symlinks and needs that path;
#     the copy gets its own `git init`: otherwise ansible-test walks up to this checkout's .git, asks it
#     which files exist, gets nothing (.work/ is ignored) and "passes" every test on zero files.
#  2. the stand-in for ansible-test's get-pip download (ci-files.testing.ansible.com is unreachable),
#     written to the cache path ansible-test reads, named after the pip version it pins.
#  3. ansible-test sanity --python 3.11 (per-test venvs under ~/.ansible/test/venv, pip from PyPI).
# Usage: sh hack/sanity.sh [extra ansible-test sanity args, e.g. --test pylint]
# Env: SANITY_PYTHON (default 3.11).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
. hack/env.sh  # top=$(pwd): PATH gets .venv/bin

python=${SANITY_PYTHON:-3.11}
ns=podops
name=gitops
root="$top/.work/sanity"
dest="$root/ansible_collections/$ns/$name"
log="$root/sanity.log"

command -v ansible-test >/dev/null 2>&1 || { echo "sanity: ansible-test not found (run make setup)" >&2; exit 1; }
# ansible-test's shellcheck test only warns and passes when the program is missing: install it like setup.sh does
if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "sanity: installing shellcheck"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }
    else
        echo "sanity: please install shellcheck (for example: sudo apt-get install shellcheck)" >&2
        exit 1
    fi
fi

# 1. fresh copy; skip tracked files deleted in the work tree (git ls-files -c still lists them)
rm -rf "$root"
mkdir -p "$dest"
git -c core.quotePath=false ls-files -co --exclude-standard |
    while IFS= read -r f; do
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
    done >"$root/files.txt"
[ -s "$root/files.txt" ] || { echo "sanity: git lists no files in $top" >&2; exit 1; }
tar -cf - --verbatim-files-from -T "$root/files.txt" | tar -xf - -C "$dest"
# stage exactly that list (-f: also files that match a .gitignore but are tracked here), so that
# ansible-test's `git ls-files --cached --others --exclude-standard` in the copy sees the same files
git -C "$dest" init -q
git --literal-pathspecs -C "$dest" add -f --pathspec-from-file="$root/files.txt"
echo "sanity: copied $(git -C "$dest" ls-files | wc -l) files to $dest"

# 2. offline get-pip stand-in, under the name ansible-test derives from its pinned pip version
# (ansible-test has no option to print it; its private API first, the source text as a fallback)
pip_version=$(python -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$python"'"))["pip"])' 2>/dev/null) ||
    pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',\{0,1\}$/\1/p" \
        "$(python -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -n 1)
[ -n "$pip_version" ] || { echo "sanity: cannot find the pip version ansible-test pins" >&2; exit 1; }
cache="${HOME}/.ansible/test/cache/get_pip_$(printf '%s' "$pip_version" | tr . _).py"
if [ ! -s "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cat > "$cache" <<'EOF'
# Offline stand-in for https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py,
# written by podops.gitops hack/sanity.sh. Bootstraps pip with ensurepip, then lets pip install
# what ansible-test asked for (pip==<pinned>) from the index configured in /etc/pip.conf.
import subprocess
import sys

# subprocess, not in-process: ensurepip sets PIP_CONFIG_FILE=/dev/null for its own run
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
EOF
    echo "sanity: wrote get-pip stand-in for pip $pip_version to $cache"
fi

# 3. run; keep the whole log, then repeat the failures at the end
cd "$dest"
start=$(date +%s)
# (no pipefail in POSIX sh: the exit status travels through a file)
{ rc=0; ansible-test sanity --python "$python" --color no "$@" 2>&1 || rc=$?; echo "$rc" >"$root/rc"; } | tee "$log"
rc=$(cat "$root/rc")
echo "sanity: ansible-test sanity finished rc=$rc in $(( $(date +%s) - start ))s (log: $log)"
# a full run that sees no files "passes"; never let that happen silently
if [ "$rc" -eq 0 ] && [ $# -eq 0 ] && grep -q 'All targets skipped' "$log"; then
    echo "sanity: ansible-test found no files to test in $dest" >&2
    rc=1
fi
if [ "$rc" -ne 0 ]; then
    echo "sanity: FAILURES:" >&2
    grep -E '^(ERROR|FATAL)' "$log" >&2 || tail -n 40 "$log" >&2
fi
exit "$rc"
