"""Integration harness: real git repos, real ansible-playbook, real podman and podman-compose.

Every test gets its own env repo, state folder and compose project prefix, so tests never see each
other's containers; everything a test started is removed afterwards (volumes included).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/podops-demo:1"
PLAYBOOK_TASKS = ("Reconcile services (plan, apply, prune, record, report)", "Redeploy the service with fresh images")


# Set to a random value in the environment of every run a Host starts; podops passes its environment on to
# the commands it runs, so /proc/<pid>/environ tells this test's processes from any other run on the machine.
TAG_VARIABLE = "PODOPS_TEST_RUN"


def own_processes(tag: str, cmdline_marker: bytes = b"") -> set[int]:
    """PIDs of the processes whose environment carries ``TAG_VARIABLE=tag`` (and whose command line holds
    ``cmdline_marker``): those a test started, never another podops run's on this machine."""
    wanted = f"{TAG_VARIABLE}={tag}".encode()
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if cmdline_marker not in handle.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if wanted in handle.read().split(b"\0"):
                    found.add(int(pid))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


# A process of the test's own that holds a host lock as a reconcile does (flock) and writes what a holder writes there.
LOCK_HOLDER = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.pwrite(fd, b'pid 4242, trigger timer, run held-by-test\\n', 0)\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


@contextlib.contextmanager
def held_lock(path: Path):
    """Hold the host lock ``path`` (its holder text: "pid 4242, trigger timer, run held-by-test") until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 10.0) -> str:
    """Body served on 127.0.0.1:port, retried until ``timeout``; raises the last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def web_service(port: int, *, image: str = IMAGE, health: str = "", extra: str = "", xpodops: str = "") -> str:
    """A compose file serving ./site on ``port`` with a healthcheck, fast health gate for tests."""
    xp = xpodops or "x-podops:\n  health: {timeout: 30, samples: 2, interval: 0.3}\n"
    healthcheck = health or '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]'
    return (
        xp
        + textwrap.dedent(
            f"""\
            services:
              web:
                image: {image}
                ports: ["127.0.0.1:{port}:8080"]
                volumes: ["./site:/www:ro"]
                healthcheck:
                  test: {healthcheck}
                  interval: 30s
            """
        )
        + extra
    )


class EnvRepo:
    """A real git repository playing the user's env repo."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        sh("git", "init", "-q", "-b", "main", str(path))
        sh("git", "-C", str(path), "config", "user.email", "test@podops.invalid")
        sh("git", "-C", str(path), "config", "user.name", "podops test")

    def write(self, rel: str, content: str, mode: int | None = None) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        if mode is not None:
            target.chmod(mode)
        return target

    def remove(self, rel: str) -> None:
        target = self.path / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def commit(self, message: str = "change") -> str:
        sh("git", "-C", str(self.path), "add", "-A")
        sh("git", "-C", str(self.path), "commit", "-q", "--allow-empty", "-m", message)
        return sh("git", "-C", str(self.path), "rev-parse", "HEAD").stdout.strip()

    def add_web(self, name: str, port: int, content: str = "v1", **kwargs) -> None:
        self.write(f"services/{name}/compose.yaml", web_service(port, **kwargs))
        self.write(f"services/{name}/site/index.html", content)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    state_dir: Path
    output: dict = field(default_factory=dict)
    check: bool = False  # a check-mode run: its report is last-check.json

    @property
    def task(self) -> dict:
        """The compose_deploy task's result for localhost (empty when it did not run)."""
        for play in self.output.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"].endswith(PLAYBOOK_TASKS):
                    return next(iter(task["hosts"].values()))
        return {}

    def first_failure(self) -> str:
        for play in self.output.get("plays", []):
            for task in play.get("tasks", []):
                for result in task["hosts"].values():
                    if result.get("failed"):
                        return result.get("msg", "")
        return ""

    def __repr__(self) -> str:
        return f"Run(rc={self.rc}, failure={self.first_failure()!r}, stderr={self.stderr[-2000:]!r})"

    @property
    def deprecations(self) -> list[str]:
        """The deprecation warnings ansible-playbook printed (each with the origin ansible-core 2.19+ names)."""
        text = self.stdout + self.stderr
        return [part.strip()[:600] for part in text.split("[DEPRECATION WARNING]")[1:]]

    @property
    def changed(self) -> bool:
        return any(stats.get("changed", 0) for stats in self.output.get("stats", {}).values())

    @property
    def report(self) -> dict:
        return json.loads((self.state_dir / ("last-check.json" if self.check else "last-run.json")).read_text())


class Host:
    """podops on this machine, isolated by state folder and project prefix."""

    def __init__(self, tmp_path: Path):
        self.prefix = "t" + secrets.token_hex(3) + "-"
        self.state_dir = tmp_path / "state"
        # Every process this host's runs start inherits the tag (see own_processes): a test observes those only.
        self.tag = secrets.token_hex(8)
        self.env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1", **{TAG_VARIABLE: self.tag})

    def redeploy(self, repo: EnvRepo | Path, service: str, *args: str, **extra) -> Run:
        return self.reconcile(repo, *args, playbook="podops.gitops.redeploy", podops_service=service, **extra)

    def reconcile(
        self,
        repo: EnvRepo | Path,
        *args: str,
        check: bool = False,
        diff: bool = False,
        timeout: float = 600,
        playbook: str = "podops.gitops.reconcile",
        **extra,
    ) -> Run:
        repo_dir = repo.path if isinstance(repo, EnvRepo) else repo
        variables = {
            "podops_repo_dir": str(repo_dir),
            "podops_state_dir": str(self.state_dir),
            "podops_project_prefix": self.prefix,
        }
        variables.update(extra)
        argv = ["ansible-playbook", playbook, "-e", json.dumps(variables), *args]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        cwd = str(repo_dir) if repo_dir.is_dir() else None
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, env=self.env, timeout=timeout, cwd=cwd)
        try:
            output = json.loads(proc.stdout[proc.stdout.index("{") :]) if "{" in proc.stdout else {}
        except ValueError:
            output = {}
        return Run(proc.returncode, proc.stdout, proc.stderr, self.state_dir, output, check=check)

    def containers(self, service: str | None = None) -> list[dict]:
        args = ["podman", "ps", "-a", "--format", "json", "--filter", f"label=io.podops.prefix={self.prefix}"]
        if service:
            args += ["--filter", f"label=io.podops.service={service}"]
        return json.loads(sh(*args).stdout or "[]")

    def ids(self, service: str) -> dict[str, tuple[str, int]]:
        """{container name: (id, started at)} of one service."""
        return {c["Names"][0]: (c["Id"], c["StartedAt"]) for c in self.containers(service)}

    def cleanup(self) -> None:
        projects = {c["Labels"].get("io.podman.compose.project") for c in self.containers()}
        # podman refuses to remove a container that another one (depends_on) still requires: repeat, dependents
        # go first. Only this test's own containers, by its prefix label.
        for _attempt in range(5):
            ids = [c["Id"] for c in self.containers()]
            if not ids:
                break
            sh("podman", "rm", "-f", "-t", "0", *ids, check=False)
        for project in filter(None, projects):
            sh("podman", "pod", "rm", "-f", f"pod_{project}", check=False)
        for kind in ("network", "volume"):
            listed = sh("podman", kind, "ls", "--format", "{{.Name}}", check=False).stdout.split()
            doomed = [name for name in listed if name.startswith(self.prefix)]
            if doomed:
                sh("podman", kind, "rm", "-f", *doomed, check=False)


@pytest.fixture(scope="session", autouse=True)
def _environment() -> None:
    """Fail loudly (not skip) when the machine is not set up: `make test` runs hack/setup.sh first."""
    assert shutil.which("podman"), "podman is missing: run `make setup`"
    assert shutil.which("ansible-playbook"), "ansible-playbook is not on PATH: run the tests through `make test`"
    assert sh("podman", "image", "exists", IMAGE, check=False).returncode == 0, f"{IMAGE} is missing: run `make setup`"


@pytest.fixture
def host(tmp_path: Path):
    podops = Host(tmp_path)
    yield podops
    podops.cleanup()


@pytest.fixture
def repo(tmp_path: Path) -> EnvRepo:
    return EnvRepo(tmp_path / "env-repo")


class Registry:
    """Debian's docker-registry (the real distribution registry) on a loopback port of its own."""

    def __init__(self, base: Path):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.base = base
        (base / "data").mkdir(parents=True)
        (base / "config.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base / 'data'}\nhttp:\n  addr: {self.host}\n")
        self.registries_conf = base / "registries.conf"
        self.registries_conf.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        self.proc = subprocess.Popen(["docker-registry", "serve", str(base / "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).read()
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.1)

    def push(self, local_image: str, name: str) -> str:
        """Publish ``local_image`` as ``<registry>/<name>`` and return that reference."""
        ref = f"{self.host}/{name}"
        env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=str(self.registries_conf))
        sh("podman", "tag", local_image, ref, env=env)
        sh("podman", "push", "-q", ref, env=env)
        return ref

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    assert shutil.which("docker-registry"), "docker-registry is missing: run `make setup`"
    for tag, variant in (("2", "serve"), ("3", "broken")):
        sh(str(REPO_ROOT / "tests/images/build.sh"), tag, variant)
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def registry_host(host, registry):
    """A host whose podman and podman-compose know the test registry as insecure (plain HTTP)."""
    host.env["CONTAINERS_REGISTRIES_CONF"] = str(registry.registries_conf)
    return host


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a reparented zombie may wait for a slow init)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
