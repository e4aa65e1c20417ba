# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The podman and podman-compose command lines podops uses - argv lists only, machine formats only.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import sys
import threading
import time
import typing as t
from dataclasses import dataclass

from ._common import (
    LABEL_COMPOSE_PROJECT,
    LABEL_COMPOSE_SERVICE,
    LABEL_SERVICE,
    MIN_PODMAN_COMPOSE_VERSION,
    MIN_PODMAN_VERSION,
    TIMEOUT_DEFAULTS,
    PodopsError,
    Runner,
    last_lines,
    parse_version,
    version_str,
)
from ._forkserver import ForkServer, Unavailable, console_script_interpreter, enabled, runner_environment
from ._state import write_json


@dataclass
class Container:
    """The parts of one ``podman ps --format json`` entry podops looks at."""

    id: str
    name: str
    state: str
    status: str
    exit_code: int
    started_at: int
    image_id: str
    labels: dict[str, str]

    @property
    def project(self) -> str:
        return self.labels.get(LABEL_COMPOSE_PROJECT, "")

    @property
    def compose_service(self) -> str:
        return self.labels.get(LABEL_COMPOSE_SERVICE, "") or self.labels.get("io.podman.compose.service", "")

    @property
    def health(self) -> str | None:
        """``healthy``/``unhealthy``/``starting`` when the container has a healthcheck, else None."""
        for word in ("unhealthy", "healthy", "starting"):
            if f"({word})" in self.status:
                return word
        return None

    @classmethod
    def from_ps(cls, entry: t.Mapping[str, t.Any]) -> Container:
        names = entry.get("Names") or [""]
        return cls(
            id=entry.get("Id", ""),
            name=names[0] if isinstance(names, list) else str(names),
            state=str(entry.get("State", "")).lower(),
            status=str(entry.get("Status", "")),
            exit_code=int(entry.get("ExitCode") or 0),
            started_at=int(entry.get("StartedAt") or 0),
            image_id=entry.get("ImageID", ""),
            labels=entry.get("Labels") or {},
        )


def compose_version(text: str) -> tuple[int, ...]:
    """podman-compose's own version from ``--version`` (1.6.0: ``podman-compose version 1.6.0``;
    1.0.x prints podman's version first and then ``podman-composer version  1.0.3``)."""
    match = re.search(r"podman-compose\w*\s+version\s+(\S+)", text or "", re.IGNORECASE)
    return parse_version(match.group(1)) if match else ()


def find_executable(name: str, explicit: str | None = None, path: str | None = None) -> str | None:
    """``explicit`` if given, else ``name`` next to the running Python (the podops venv), else on ``path``
    (default: this process's PATH)."""
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else shutil.which(explicit, path=path)
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which(name, path=path)


def removal_rounds(required_by: t.Mapping[str, t.Sequence[str]]) -> list[list[str]]:
    """The order to remove a set of containers in: rounds of IDs, each holding the containers that no container
    left in the set still requires (``required_by``: ID -> IDs it requires, as ``podman container inspect``'s
    Dependencies). A chain a <- b <- c gives [[c], [b], [a]]. Requirements outside the set do not hold a
    container back (podman removes a container whose required containers stay); a cycle, which podman does
    not allow, would end up in the last round as it is."""
    left = {cid: [dep for dep in deps if dep in required_by and dep != cid] for cid, deps in required_by.items()}
    rounds = []
    while left:
        required = {dep for deps in left.values() for dep in deps}
        batch = [cid for cid in left if cid not in required] or list(left)
        rounds.append(batch)
        for cid in batch:
            del left[cid]
    return rounds


class Podman:
    def __init__(self, runner: Runner, executable: str | None = None):
        found = find_executable("podman", executable)
        if not found:
            raise PodopsError(
                "podman was not found on this host. Install it (Debian/Ubuntu: apt-get install podman; "
                "or run the podops.gitops.bootstrap playbook), or set podops_podman_executable."
            )
        self.executable = found
        self.run = runner
        # The latest host-wide ``podman ps -a`` (the plan's, a health round's): when it started, what it saw.
        self._snapshot: tuple[float, list[Container]] | None = None
        self._snapshot_lock = threading.RLock()
        # When podops last finished changing a compose project's containers (monotonic), and any project's.
        self._changed: dict[str, float] = {}
        self._changed_any = float("-inf")
        # The projects a health gate waits on: project -> the IDs of its containers (empty until first listed),
        # and the latest sampling round over all of them (``podman ps --filter id=...``): when it started, what it saw.
        self._watched: dict[str, frozenset[str]] = {}
        self._round: tuple[float, list[Container]] | None = None

    def project_containers(self, project: str, not_before: float) -> list[Container]:
        """Containers of one compose project, listed after ``not_before`` (monotonic time).

        A sampling round costs what is being deployed, not what the host runs: a project a health gate waits on
        (see watching) is served from one ``podman ps --filter id=...`` over the containers of every project being
        waited on, shared by the deploys running in parallel; any other project, and a watched one whose
        containers are not all known yet or went away, from a ``podman ps`` filtered by its project label."""
        with self._snapshot_lock:
            ids = self._watched.get(project)
            if ids:
                if self._round is None or self._round[0] < not_before:
                    started = time.monotonic()
                    watched = sorted({cid for known in self._watched.values() for cid in known})
                    self._round = (started, self._listing(["--filter", f"id={cid}"] for cid in watched))
                listed = [c for c in self._round[1] if c.project == project]
                if {c.id for c in listed} == ids:
                    return listed
        listed = self.containers(label=None, project=project)
        with self._snapshot_lock:
            if project in self._watched:
                self._watched[project] = frozenset(c.id for c in listed)
        return listed

    @contextlib.contextmanager
    def watching(self, project: str) -> t.Iterator[None]:
        """While a health gate samples ``project``: its containers join the shared sampling rounds."""
        self.relist(project)
        try:
            yield
        finally:
            with self._snapshot_lock:
                self._watched.pop(project, None)

    def relist(self, project: str) -> None:
        """The next sample of watched ``project`` lists it by its label again (a compose service had no container:
        the IDs known so far are not all of them)."""
        with self._snapshot_lock:
            self._watched[project] = frozenset()

    def known_containers(self, project: str) -> list[Container]:
        """Containers of one compose project as podops last saw them: from the latest host-wide ``podman ps``
        when it was taken after podops' last change to that project in this run (the plan's ps, for a project
        not touched since), else from a ps of that project. Changes made by hand meanwhile are not seen, as with
        the plan."""
        with self._snapshot_lock:
            since = max(self._changed.get(project, float("-inf")), self._changed_any)
            if self._snapshot is not None and self._snapshot[0] >= since:
                return [c for c in self._snapshot[1] if c.project == project]
        return self.containers(label=None, project=project)

    def touched(self, project: str | None) -> None:
        """podops changed the containers of ``project`` (None: of projects it cannot name): snapshots taken
        before now no longer show it as it is (see known_containers)."""
        now = time.monotonic()
        with self._snapshot_lock:
            if project is None:
                self._changed_any = now
            else:
                self._changed[project] = now

    def check_version(self, cache_file: str | None = None) -> tuple[int, ...]:
        """podman's version, checked against the minimum; with ``cache_file`` (``<state dir>/tools.json``) the
        answer is kept by the executable's path, size and mtime, so a run starts no ``podman --version`` until
        podman is replaced."""
        cached = cached_version(cache_file, self.executable, MIN_PODMAN_VERSION) if cache_file else None
        if cached is not None:
            return cached
        rc, out, err = self.run([self.executable, "--version"], timeout=TIMEOUT_DEFAULTS["podman"])
        version = parse_version(out)
        if rc != 0 or not version:
            raise PodopsError(f"'{self.executable} --version' failed: {last_lines(err or out)}")
        if version < MIN_PODMAN_VERSION:
            raise PodopsError(f"podman {version_str(version)} is too old: podops needs podman >= {version_str(MIN_PODMAN_VERSION)}. Upgrade podman.")
        if cache_file:
            remember_version(cache_file, self.executable, version)
        return version

    def containers(self, label: str | None = LABEL_SERVICE, project: str | None = None) -> list[Container]:
        """All containers (running or not) with ``label`` (None: every container), optionally of one
        compose project: one call."""
        started = time.monotonic()
        filters = []
        if label:
            filters.append(["--filter", f"label={label}"])
        if project is not None:
            filters.append(["--filter", f"label={LABEL_COMPOSE_PROJECT}={project}"])
        containers = self._listing(filters)
        if label is None and project is None:
            self._record(started, containers)
        return containers

    def _listing(self, filters: t.Iterable[t.Sequence[str]]) -> list[Container]:
        """``podman ps -a --format json`` with these filter arguments (podman ANDs label filters, ORs id filters)."""
        args = [self.executable, "ps", "-a", "--format", "json"] + [arg for pair in filters for arg in pair]
        rc, out, err = self.run(args, timeout=TIMEOUT_DEFAULTS["podman"])
        if rc != 0:
            raise PodopsError(f"'podman ps' failed: {last_lines(err)}. Is podman working for this user? Try 'podman info'.")
        try:
            entries = json.loads(out or "[]") or []
        except ValueError as exc:
            raise PodopsError(f"'podman ps --format json' printed something that is not JSON: {exc}") from exc
        return [Container.from_ps(entry) for entry in entries]

    def _record(self, started: float, containers: list[Container]) -> None:
        """Keep a host-wide listing as the snapshot when it is newer than the one kept."""
        with self._snapshot_lock:
            if self._snapshot is None or self._snapshot[0] <= started:
                self._snapshot = (started, containers)

    def pull(self, image: str, timeout: float = TIMEOUT_DEFAULTS["pull"]) -> None:
        if image.startswith("localhost/"):
            # No registry serves localhost/: podman would only report a failed ping of one.
            raise PodopsError(f"image {image} is not on this host: build or load it here (podman build -t {image} ..., or podman load), then run again")
        rc, out, err = self.run([self.executable, "pull", "--quiet", image], timeout=timeout)
        if rc != 0:
            raise PodopsError(f"image {image} could not be pulled: {last_lines(err or out, 2)}")

    def image_id(self, image: str) -> str | None:
        """Local image ID of ``image``, or None when it is not here (one call: exists and ID at once)."""
        rc, out, _err = self.run([self.executable, "image", "inspect", "--format", "{{.Id}}", image], timeout=TIMEOUT_DEFAULTS["podman"])
        return out.strip().splitlines()[0] if rc == 0 and out.strip() else None

    def image_ids(self, images: t.Sequence[str]) -> dict[str, str]:
        """Local image ID of each image reference that exists here (one inspect per image: a single
        ``podman image inspect a b`` fails as a whole when one is missing)."""
        found: dict[str, str] = {}
        for image in images:
            image_id = self.image_id(image)
            if image_id:
                found[image] = image_id
        return found

    def tag(self, image_id: str, reference: str) -> None:
        rc, _out, err = self.run([self.executable, "tag", image_id, reference], timeout=TIMEOUT_DEFAULTS["podman"])
        if rc != 0:
            raise PodopsError(f"could not tag image {image_id[:12]} as {reference}: {last_lines(err)}")

    def stop_project(self, project: str, stop_timeout: int = 10, timeout: float = TIMEOUT_DEFAULTS["down"]) -> None:
        ids = [c.id for c in self.containers(label=None, project=project) if c.state == "running"]
        if ids:
            try:
                self.run([self.executable, "stop", "-t", str(stop_timeout)] + ids, timeout=timeout)
            finally:
                self.touched(project)

    def remove_containers(self, names: t.Sequence[str], stop_timeout: int = 10, timeout: float = TIMEOUT_DEFAULTS["down"]) -> None:
        if names:
            try:
                self.remove(names, stop_timeout, timeout)
            except PodopsError as exc:
                raise PodopsError(f"could not remove {', '.join(names)}: {exc}") from exc
            finally:
                self.touched(None)  # by name: whichever projects they were in

    def dependencies(self, refs: t.Sequence[str]) -> dict[str, list[str]]:
        """{container ID: IDs of the containers it requires} for each of ``refs`` (names or IDs) that exists.
        podman-compose creates a service with ``--requires`` on the services it ``depends_on``."""
        rc, out, err = self.run([self.executable, "container", "inspect", "--format", "json", *refs], timeout=TIMEOUT_DEFAULTS["podman"])
        try:
            entries = json.loads(out or "[]") or []
        except ValueError as exc:
            raise PodopsError(f"'podman container inspect' printed something that is not JSON: {exc}") from exc
        if rc != 0 and not entries and "no such" not in (err or "").lower():
            raise PodopsError(f"'podman container inspect' failed: {last_lines(err)}")
        return {entry["Id"]: list(entry.get("Dependencies") or []) for entry in entries if entry.get("Id")}

    def remove(self, refs: t.Sequence[str], stop_timeout: int = 10, timeout: float = TIMEOUT_DEFAULTS["down"]) -> list[str]:
        """Stop and remove containers (names or IDs; missing ones are skipped), those that require others first:
        podman refuses to remove a container that another one still requires. All are stopped in one call
        first, so a chain takes one stop timeout, not one per link. Returns the IDs removed."""
        required_by = self.dependencies(refs)
        if not required_by:
            return []
        ids = list(required_by)
        self.run([self.executable, "stop", "--ignore", "-t", str(stop_timeout), *ids], timeout=timeout)
        for batch in removal_rounds(required_by):
            rc, _out, err = self.run([self.executable, "rm", "-f", "--ignore", "-t", str(stop_timeout), *batch], timeout=timeout)
            if rc != 0:
                raise PodopsError(last_lines(err) or f"podman rm exited with {rc}")
        return ids

    def healthcheck(self, container_id: str, timeout: float = TIMEOUT_DEFAULTS["healthcheck"]) -> bool:
        """Run the container's healthcheck now (works without systemd timers); True when healthy."""
        rc, _out, _err = self.run([self.executable, "healthcheck", "run", container_id], timeout=timeout)
        return rc == 0

    def health_output(self, container_id: str) -> str | None:
        """What the container's last healthcheck printed ("wget: server returned error: HTTP/1.1 404"), or None."""
        rc, out, _err = self.run([self.executable, "container", "inspect", "--format", "json", container_id], timeout=TIMEOUT_DEFAULTS["podman"])
        try:
            entries = json.loads(out or "[]") if rc == 0 else []
        except ValueError:
            return None
        state = (entries[0].get("State") or {}) if entries and isinstance(entries[0], dict) else {}
        health = state.get("Health") or state.get("Healthcheck") or {}
        log = health.get("Log") or [] if isinstance(health, dict) else []
        output = str((log[-1] or {}).get("Output") or "").strip() if log and isinstance(log[-1], dict) else ""
        return output or None

    def start(self, refs: t.Sequence[str], timeout: float = TIMEOUT_DEFAULTS["up"]) -> None:
        """Start created (or stopped) containers; running ones stay as they are. podman also starts the
        containers they require (``--requires``, from depends_on)."""
        if not refs:
            return
        rc, out, err = self.run([self.executable, "start", *refs], timeout=timeout)
        if rc != 0:
            raise PodopsError(f"'podman start' failed (rc {rc}): {last_lines(err or out)}")

    def logs(self, container: str, tail: int = 40) -> list[str]:
        """The last ``tail`` lines a container printed (stdout, then stderr: podman keeps them apart here)."""
        rc, out, err = self.run([self.executable, "logs", "--tail", str(tail), container], timeout=TIMEOUT_DEFAULTS["podman"])
        if rc != 0:
            return []
        lines = [line for line in (out or "").splitlines() + (err or "").splitlines() if line.strip()]
        return lines[-tail:]

    def remove_project(self, project: str, stop_timeout: int = 10, known: bool = False) -> list[str]:
        """Remove the containers, pod and networks of one compose project; never its volumes. ``known``: its
        containers as podops last saw them (``known_containers``: the plan's listing for a project this run has
        not touched yet) instead of a listing of their own. The project's pod and networks are listed in two threads
        beside the containers' removal (neither listing depends on it), and removed after it."""
        limit = TIMEOUT_DEFAULTS["podman"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="podops-leftovers") as pool:
            pods = pool.submit(self._ids, ["pod", "ps", "-q", "--filter", f"name=^pod_{project}$"], limit)
            networks = pool.submit(self._ids, ["network", "ls", "-q", "--filter", f"label={LABEL_COMPOSE_PROJECT}={project}"], limit)
            ids = [c.id for c in (self.known_containers(project) if known else self.containers(LABEL_COMPOSE_PROJECT, project))]
            removed = []
            if ids:
                try:
                    removed += self.remove(ids, stop_timeout, TIMEOUT_DEFAULTS["down"])
                except PodopsError as exc:
                    raise PodopsError(f"could not remove the containers of {project}: {exc}") from exc
                finally:
                    self.touched(project)
        for pod in pods.result():
            self.run([self.executable, "pod", "rm", "-f", pod], timeout=TIMEOUT_DEFAULTS["down"])
        for network in networks.result():
            self.run([self.executable, "network", "rm", network], timeout=limit)
        return removed

    def _ids(self, args: list[str], timeout: float) -> list[str]:
        """The IDs a ``podman ... -q`` listing prints; a listing that fails finds nothing to remove."""
        _rc, out, _err = self.run([self.executable, *args], timeout=timeout)
        return out.split()


def _identity(executable: str) -> str:
    real = os.path.realpath(executable)
    info = os.stat(real)
    return f"{real}:{info.st_size}:{info.st_mtime_ns}"


def cached_version(cache_file: str, executable: str, minimum: tuple[int, ...]) -> tuple[int, ...] | None:
    """The version ``remember_version`` kept for this very executable (same path, size and mtime), or None."""
    try:
        with open(cache_file, encoding="utf-8") as handle:
            cached = json.load(handle).get(_identity(executable))
    except (OSError, ValueError, AttributeError):
        return None
    version = tuple(cached) if isinstance(cached, list) and all(isinstance(part, int) for part in cached) else None
    return version if version and version >= minimum else None


def remember_version(cache_file: str, executable: str, version: tuple[int, ...]) -> None:
    """Keep ``version`` in ``cache_file`` (the state folder's tools.json) beside the other tools' entries;
    entries of executables that changed since are dropped."""
    try:
        with open(cache_file, encoding="utf-8") as handle:
            kept = json.load(handle)
    except (OSError, ValueError):
        kept = {}
    kept = {key: value for key, value in (kept.items() if isinstance(kept, dict) else []) if _still(key)}
    with contextlib.suppress(OSError):
        kept[_identity(executable)] = list(version)
        write_json(cache_file, kept)


def _still(identity: str) -> bool:
    """The executable of a tools.json key is still that file (same size and mtime)."""
    path = identity.rsplit(":", 2)[0]
    try:
        return _identity(path) == identity
    except OSError:
        return False


class PodmanCompose:
    def __init__(self, runner: Runner, executable: str | None = None):
        found = find_executable("podman-compose", executable)
        if not found:
            raise PodopsError(
                "podman-compose was not found. Install it in the Python environment Ansible uses for this host "
                f"(pip install 'podman-compose>={version_str(MIN_PODMAN_COMPOSE_VERSION)}'; the podops.gitops.bootstrap "
                "playbook does this), or set podops_compose_executable."
            )
        self.executable = found
        self.run = runner
        self._version: tuple[int, ...] | None = None
        # None: not decided yet; False: run podman-compose as a program (see call).
        self._server: ForkServer | bool | None = None if enabled() else False
        self._server_lock = threading.Lock()

    def fork_server(self) -> ForkServer | None:
        """The podman-compose fork server of this run (started on first use), or None where it cannot serve
        (not a pip console script, its interpreter cannot import podman_compose, a runner whose command
        environment podops does not know, turned off)."""
        with self._server_lock:
            if self._server is None:
                environment = runner_environment(self.run)
                interpreter = console_script_interpreter(self.executable) if environment else None
                server = ForkServer(self.executable, interpreter, environment) if interpreter and environment else None
                try:
                    if server is not None:
                        server.start()
                except Unavailable:
                    server = None
                self._server = server or False
            return self._server or None

    def close(self) -> None:
        """Stop the fork server, if one runs (it also stops by itself when this process ends)."""
        with self._server_lock:
            if isinstance(self._server, ForkServer):
                self._server.close()
                self._server = False

    def call(
        self, args: list[str], cwd: str | None = None, env: t.Mapping[str, str] | None = None, timeout: float = TIMEOUT_DEFAULTS["podman"]
    ) -> tuple[int, str, str]:
        """Run podman-compose: through the fork server when there is one (same argv, cwd, environment, exit
        status, output and time limit), else as a program through the runner. CommandTimeout after ``timeout``."""
        server = self.fork_server()
        if server is not None:
            try:
                return server.run(args, cwd=cwd, env=env, timeout=timeout)
            except Unavailable:
                # Nothing of this call ran. A server that is gone serves no more calls; one that could not fork
                # this time keeps serving (calls in flight are its children: it must not be stopped here).
                if not server.alive:
                    with self._server_lock:
                        if self._server is server:
                            self._server = False
                    server.close()
        extra = {"env": dict(env)} if env else {}
        return self.run(args, cwd=cwd, timeout=timeout, **extra)

    def check_version(self, cache_file: str | None = None) -> tuple[int, ...]:
        """podman-compose's version, checked against the minimum. ``podman-compose --version`` also runs
        podman (about 0.4 s), so the answer is cached in ``cache_file`` by the executable's path, size and mtime."""
        if self._version is None and cache_file:
            self._version = cached_version(cache_file, self.executable, MIN_PODMAN_COMPOSE_VERSION)
        if self._version is None:
            rc, out, err = self.run([self.executable, "--version"], timeout=TIMEOUT_DEFAULTS["podman"])
            version = compose_version(out)
            if rc != 0 or not version:
                raise PodopsError(f"'{self.executable} --version' failed: {last_lines(err or out)}")
            if version < MIN_PODMAN_COMPOSE_VERSION:
                raise PodopsError(
                    f"podman-compose {version_str(version)} is too old: podops needs >= {version_str(MIN_PODMAN_COMPOSE_VERSION)} "
                    "(long-form env_file, depends_on conditions). Install a newer one: pip install 'podman-compose==1.6.0'."
                )
            self._version = version
            if cache_file:
                remember_version(cache_file, self.executable, version)
        return self._version

    def base_args(
        self,
        project: str,
        compose_file: str,
        override_file: str,
        in_pod: bool | None = False,
        user_override: str | None = None,
        profiles: t.Sequence[str] = (),
    ) -> list[str]:
        """``in_pod=False`` unless the compose file decides (None): podman-compose's default pod is removed
        as a whole when one service is recreated, which takes the project's other containers with it.
        ``profiles``: the active compose profiles, one ``--profile`` each (podman-compose adds COMPOSE_PROFILES)."""
        service_dir = os.path.dirname(compose_file)
        pod = [] if in_pod is None else ["--in-pod", "true" if in_pod else "false"]
        return [
            self.executable,
            *pod,
            *[arg for profile in profiles for arg in ("--profile", profile)],
            "--project-name",
            project,
            "-f",
            compose_file,
            *(["-f", user_override] if user_override else []),
            "-f",
            override_file,
            # podman-compose also reads a .env relative to its cwd: name the service's own explicitly.
            "--env-file",
            os.path.join(service_dir, ".env"),
        ]

    def up(
        self,
        project: str,
        compose_file: str,
        override_file: str,
        in_pod: bool | None = False,
        build: bool = False,
        user_override: str | None = None,
        env: t.Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_DEFAULTS["up"],
        profiles: t.Sequence[str] = (),
        start: bool = True,
    ) -> None:
        """``up -d`` without ``--remove-orphans``: podman-compose 1.6 passes it on to the ``down`` of the services
        it recreates, which then removes every container of the project. podops removes orphans itself.
        ``start=False``: create (and recreate) only, ``--no-start``; podops starts them (see _depends)."""
        # --build: rebuild images of services with a build context (before anything is torn down).
        args = self.base_args(project, compose_file, override_file, in_pod, user_override, profiles) + ["up", "-d"] + (["--build"] if build else [])
        if not start:
            args.append("--no-start")
        # env: variables the compose file interpolates beyond .env (a blue-green slot's PODOPS_SLOT...).
        rc, out, err = self.call(args, cwd=os.path.dirname(compose_file), env=env, timeout=timeout)
        if rc != 0:
            raise PodopsError(f"podman-compose up failed (rc {rc}): {last_lines(err or out)}")
