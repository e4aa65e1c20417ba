# shellcheck shell=sh
# Sourced by hack/molecule.sh and hack/compat.sh: one container with systemd as PID 1 at a time on this host.
# On a cgroups v1 host (this CI's kind) two such containers, even with --cgroupns=private, see each other's cgroup
# trees: one's systemd removed the other's (`stat /sys/fs/cgroup/systemd/system.slice/ssh.service: no such file`,
# `netavark: No such file or directory` in the nested podman). A second checkout's run waits here instead.
podops_systemd_lock() {
    lock="${TMPDIR:-/tmp}/podops-systemd-containers.lock"
    exec 9>>"$lock"
    if ! flock -n 9; then
        echo "$1: waiting for another checkout's molecule or compat run on this host ($lock)" >&2
        flock -w "${PODOPS_SYSTEMD_LOCK_TIMEOUT:-5400}" 9 || { echo "$1: still busy after ${PODOPS_SYSTEMD_LOCK_TIMEOUT:-5400}s; giving up" >&2; exit 1; }
    fi
}

# The lock is this shell's: the programs it starts must not inherit it (podman leaves conmon, aardvark-dns and its
# pause process running, and they would hold the lock after this run ends).
podman() { command podman "$@" 9>&-; }
molecule() { command molecule "$@" 9>&-; }
timeout() { command timeout "$@" 9>&-; }
