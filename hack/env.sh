# shellcheck shell=sh
# Sourced by the Makefile's recipes: the venv, the collection path and the podman probe result.
top=${PODOPS_TOP:-$(pwd)}
PATH="$top/.venv/bin:$PATH"
ANSIBLE_COLLECTIONS_PATH="$top/.work/collections"
ANSIBLE_RETRY_FILES_ENABLED=false
ANSIBLE_LOCALHOST_WARNING=false
ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export PATH ANSIBLE_COLLECTIONS_PATH ANSIBLE_RETRY_FILES_ENABLED ANSIBLE_LOCALHOST_WARNING ANSIBLE_INVENTORY_UNPARSED_WARNING
if [ -s "$top/.work/podman.env" ]; then
    set -a
    . "$top/.work/podman.env"
    set +a
fi
