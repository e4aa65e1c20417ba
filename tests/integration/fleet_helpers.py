"""A fleet on this machine: one real ``sshd`` per simulated host on a loopback address of its own.

Every host of a :class:`Fleet` is an ``sshd -D -e`` process that this module starts and kills, listening on
127.0.0.<n>:<free port> with its own host key, key-only authentication (one client key generated for the fleet) and
a known_hosts file that pins those host keys (``StrictHostKeyChecking=yes``). The hosts all share this machine's
podman (as root), so each gets its own state folder, compose project prefix and ports in its host_vars: a test
observes only what its own hosts started. Used by tests/integration/test_fleet.py and benchmarks/fleet.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
REPO_ROOT = Path(__file__).resolve().parents[2]
# The Python that runs the modules on every simulated host: the project's venv (PyYAML and podman-compose are there).
REMOTE_PYTHON = str(Path(sys.executable).parent / "python")


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=timeout)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_listening(address: str, port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Until ``address:port`` accepts a connection, or fail with sshd's own output when it exited first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd on {address}:{port} exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class SshHost:
    """One simulated host: its sshd and the settings that keep its services apart from the others'."""

    name: str
    address: str
    port: int
    base: Path
    prefix: str
    proc: subprocess.Popen | None = None
    vars: dict = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def last_run(self) -> dict:
        return json.loads((self.state_dir / "last-run.json").read_text())

    def containers(self, service: str | None = None) -> list[dict]:
        argv = ["podman", "ps", "-a", "--format", "json", "--filter", f"label=io.podops.prefix={self.prefix}"]
        if service:
            argv += ["--filter", f"label=io.podops.service={service}"]
        return json.loads(_run(*argv).stdout or "[]")

    def container_ids(self) -> dict[str, str]:
        """{container name: id} of every container of this host."""
        return {c["Names"][0]: c["Id"] for c in self.containers()}

    def cleanup_containers(self) -> None:
        projects = {c["Labels"].get("io.podman.compose.project") for c in self.containers()}
        for _attempt in range(5):  # dependents first: podman refuses to remove a container another one requires
            ids = [c["Id"] for c in self.containers()]
            if not ids:
                break
            subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], check=False, capture_output=True, timeout=120)
        for project in filter(None, projects):
            subprocess.run(["podman", "pod", "rm", "-f", f"pod_{project}"], check=False, capture_output=True, timeout=60)
        for kind in ("network", "volume"):
            listed = subprocess.run(["podman", kind, "ls", "--format", "{{.Name}}"], check=False, capture_output=True, text=True, timeout=60).stdout.split()
            doomed = [name for name in listed if name.startswith(self.prefix)]
            if doomed:
                subprocess.run(["podman", kind, "rm", "-f", *doomed], check=False, capture_output=True, timeout=60)


class Fleet:
    """``count`` sshd instances on 127.0.0.2, 127.0.0.3, ... and an inventory that reaches them over SSH."""

    def __init__(self, base: Path, count: int, *, first_address: int = 2):
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} is missing: run `make setup` (it installs openssh-server)")
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.client_key = base / "client_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podops-fleet-test", "-f", str(self.client_key))
        (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
        self.known_hosts = base / "known_hosts"
        # The ssh masters' sockets: a unix socket path holds at most 107 bytes, and ssh adds the socket's name and a
        # temporary suffix of its own. Under pytest-xdist the test's tmp_path alone can reach 80 ("pytest-19/
        # popen-gw0/<test name>"), so the sockets go to a short folder of this fleet's own (removed by stop()).
        self.control_dir = Path(tempfile.mkdtemp(prefix="podops-cp-"))
        # sshd's privilege separation needs this folder (systemd's tmpfiles makes it on a normal host).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        tag = secrets.token_hex(2)
        self.hosts = [self._host(f"h{index + 1}-{tag}", f"127.0.0.{first_address + index}") for index in range(count)]
        try:
            known = []
            for host in self.hosts:
                host.proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(host.base / "sshd_config")],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                public = (host.base / "host_key.pub").read_text().split()
                known.append(f"[{host.address}]:{host.port} {public[0]} {public[1]}")
            self.known_hosts.write_text("\n".join(known) + "\n")
            for host in self.hosts:
                wait_listening(host.address, host.port, host.proc)
        except BaseException:
            self.stop()
            raise

    def _host(self, name: str, address: str) -> SshHost:
        base = self.base / name
        base.mkdir()
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(base / "host_key"))
        port = free_port(address)
        (base / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:{port}",
                    f"HostKey {base / 'host_key'}",
                    f"AuthorizedKeysFile {self.base / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "PidFile none",
                    "MaxSessions 50",
                    "MaxStartups 100:30:200",
                    "LogLevel ERROR",
                    "Subsystem sftp /usr/lib/openssh/sftp-server",
                    "",
                ]
            )
        )
        host = SshHost(name=name, address=address, port=port, base=base, prefix="f" + secrets.token_hex(3) + "-")
        host.vars = {
            "ansible_connection": "ssh",
            "ansible_host": address,
            "ansible_port": port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
            "ansible_python_interpreter": REMOTE_PYTHON,
            "podops_state_dir": str(base / "state"),
            "podops_project_prefix": host.prefix,
        }
        podman_env = {key: os.environ[key] for key in ("CONTAINERS_CONF",) if os.environ.get(key)}
        if podman_env:  # sshd does not pass the controller's environment on: the hosts need it in their vars
            host.vars["podops_podman_env"] = podman_env
        return host

    def inventory(self, path: Path, group_vars: dict | None = None) -> Path:
        """A YAML inventory of every host (group ``fleet``) with its host_vars; returns its path."""
        data = {
            "all": {
                "vars": group_vars or {},
                "children": {"fleet": {"hosts": {host.name: host.vars for host in self.hosts}}},
            }
        }
        path.write_text(json.dumps(data, indent=2))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for ansible-playbook on the controller: SSH multiplexing in this fleet's own folder."""
        return dict(
            os.environ,
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.control_dir),
            ANSIBLE_PIPELINING="1",
            ANSIBLE_HOST_KEY_CHECKING="1",
            ANSIBLE_NOCOLOR="1",
            **extra,
        )

    def cleanup_containers(self) -> None:
        for host in self.hosts:
            host.cleanup_containers()

    def stop(self) -> None:
        """Kill every sshd this fleet started (their sessions and the controller's masters end with them)."""
        for host in self.hosts:
            if host.proc and host.proc.poll() is None:
                host.proc.terminate()
        for host in self.hosts:
            if host.proc:
                try:
                    host.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    host.proc.kill()
                    host.proc.wait(timeout=10)
                if host.proc.stderr:
                    host.proc.stderr.close()
        # ssh masters (ControlPersist) of this fleet: ask each to exit, by its socket in our own folder
        if self.control_dir.is_dir():
            for sock in self.control_dir.iterdir():
                subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], check=False, capture_output=True, timeout=10)
            shutil.rmtree(self.control_dir, ignore_errors=True)
