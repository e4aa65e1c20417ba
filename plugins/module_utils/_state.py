# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state folder: what podops deployed (state.json), last good snapshots, the host lock.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Layout of ``podops_state_dir`` (0700)::

    state.json            per service a ServiceRecord: last good digest, files, commit, status, error (0600)
    runs/<run_id>.json    one run report per reconcile; last-run.json is the newest
    reconcile.lock        flock: one reconcile per host at a time
    ...                   and what podops keeps for each service: see ServiceFiles, their one home

Every write is a temp file + fsync + rename: a run killed at any moment leaves readable state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import typing as t
from dataclasses import dataclass, field

from ._common import PodopsError, utcnow

STATE_VERSION = 1
LOCK_ENV = "PODOPS_LOCK_HELD"


STATE_FILE = "state.json"  # <state_dir>/state.json: each service's ServiceRecord
TOOLS_FILE = "tools.json"  # <state_dir>/tools.json: podman's and podman-compose's versions, by executable (_podman)
SLOTS = ("a", "b")  # a blue-green service runs as two compose projects, <project>-a and <project>-b


def slot_project(project_name: str, slot: str) -> str:
    """The compose project of a blue-green slot."""
    return f"{project_name}-{slot}"


def slot_of(project_name: str) -> str | None:
    """The slot a compose project is, by its name (None: not a slot's project)."""
    base, sep, slot = project_name.rpartition("-")
    return slot if sep and base and slot in SLOTS else None


class ServiceFiles:
    """Everything podops keeps for one service outside the env repo: the one place these paths are spelled,
    and :meth:`forget` removes all of them (a pruned service leaves nothing behind)::

        overrides/<name>.yml           the label override podman-compose gets with the compose file
        overrides/<name>.rollback.yml  the same for putting the last good version back
        overrides/<name>-<slot>.yml    blue-green: the override of each slot's project
        snapshots/<name>/              the last good copy of its inputs (SnapshotStore)
        slots/<name>-<slot>/           blue-green: the copy of the service folder a slot runs from
        ab/<name>.json                 blue-green: which slot is active (the A/B marker)
        <runtime>/<name>[-<slot>]/     decrypted copies of a service with ansible-vault files (RuntimeStore)
    """

    def __init__(self, state_dir: str, name: str):
        self.state_dir = state_dir
        self.name = name

    def unit(self, slot: str | None = None) -> str:
        """The name of the copies and overrides of the service, or of one of its slots."""
        return f"{self.name}-{slot}" if slot else self.name

    def override(self, slot: str | None = None, rollback: bool = False) -> str:
        return os.path.join(self.state_dir, "overrides", self.unit(slot) + (".rollback" if rollback else "") + ".yml")

    @property
    def marker(self) -> str:
        return os.path.join(self.state_dir, "ab", f"{self.name}.json")

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.state_dir)

    @property
    def runtime(self) -> RuntimeStore:
        return RuntimeStore(self.state_dir)

    @property
    def slot_copies(self) -> RuntimeStore:
        return RuntimeStore(self.state_dir, base=os.path.join(self.state_dir, "slots"))

    def forget_slots(self) -> None:
        """The files of both blue-green slots and the marker: the service runs without slots now."""
        for slot in SLOTS:
            self.slot_copies.remove(self.unit(slot))
            self.runtime.remove(self.unit(slot))
            for rollback in (False, True):
                with contextlib.suppress(OSError):
                    os.unlink(self.override(slot, rollback))
        with contextlib.suppress(OSError):
            os.unlink(self.marker)

    def forget(self) -> None:
        """All of it: the service has left the host."""
        self.forget_slots()
        self.snapshots.remove(self.name)
        self.runtime.remove(self.name)
        for rollback in (False, True):
            with contextlib.suppress(OSError):
                os.unlink(self.override(rollback=rollback))


def ensure_dir(path: str, mode: int = 0o700) -> None:
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise PodopsError(f"cannot create state folder {path}: {exc.strerror}; set podops_state_dir to a writable folder") from exc


def atomic_write(path: str, data: bytes | str, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """Write ``path`` so that readers see the old or the new content, never a part. ``owner``: the (uid, gid)
    the file gets before it takes its name (root writing for another user: no moment where it is root's)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def json_text(data: t.Any) -> str:
    """How podops writes a JSON file: sorted keys, indented for people reading it."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_json(path: str, data: t.Any, owner: tuple[int, int] | None = None) -> None:
    atomic_write(path, json_text(data), owner=owner)


def foreign_owner(state_dir: str) -> tuple[int, int] | None:
    """The (uid, gid) of ``state_dir`` when root writes into another user's state folder (a rootless host's
    ``~user/.local/state/podops``, written by a root task such as the shim's A/B switch): what root creates
    there must stay that user's, or the user's own podops can no longer read it. None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(state_dir)
    except OSError:
        return None
    return (info.st_uid, info.st_gid) if info.st_uid != 0 else None


@dataclass(frozen=True)
class ServiceRecord:
    """What state.json keeps for one service (``services.<name>``): its one home.

    A record writes back exactly the keys it was read or built with (a first failure has no ``images``, a
    deploy writes ``error: null``), plus any key it does not know (``extra``, from an older or newer podops):
    state.json's content does not change by being read and saved. The transitions return a new record.
    """

    project: str | None = None  # the compose project serving (a blue-green service: its active slot's)
    service_dir: str | None = None
    digest: str | None = None  # of the last good version; None: never deployed
    files: t.Mapping[str, t.Any] = field(default_factory=dict)  # file -> hash of the last good version
    images: t.Mapping[str, str] = field(default_factory=dict)  # compose service -> image ID it runs
    vault_keys: t.Sequence[str] = ()  # the files that are ansible-vault encrypted
    compose_file: str | None = None
    strategy: str | None = None  # x-podops.strategy: "blue-green" or None
    base_project: str | None = None  # the project name without a slot
    commit: str | None = None
    deployed_at: str | None = None
    status: str | None = None  # "ok" or "failed"
    failed_digest: str | None = None
    error: str | None = None
    failed_at: str | None = None
    extra: t.Mapping[str, t.Any] = field(default_factory=dict)  # keys this podops does not know, kept as read
    present: frozenset[str] = frozenset()  # the keys written back (see the class docstring)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "present"))

    @classmethod
    def from_dict(cls, data: t.Mapping[str, t.Any]) -> ServiceRecord:
        known = cls.keys()
        return cls(
            **{key: data[key] for key in known if key in data},
            extra={key: value for key, value in data.items() if key not in known},
            present=frozenset(key for key in known if key in data),
        )

    def to_dict(self) -> dict[str, t.Any]:
        return {**self.extra, **{key: getattr(self, key) for key in self.keys() if key in self.present}}

    def __bool__(self) -> bool:
        """An empty entry (``{}``) is no record, as the dict it replaces was: ``recorded or ...`` builds one."""
        return bool(self.present or self.extra)

    def _with(self, **changes: t.Any) -> ServiceRecord:
        return dataclasses.replace(self, **changes, present=self.present | frozenset(changes))

    @classmethod
    def deployed(
        cls,
        *,
        project: str,
        service_dir: str,
        digest: str,
        files: t.Mapping[str, t.Any],
        images: t.Mapping[str, str] | None,
        vault_keys: t.Sequence[str],
        compose_file: str | None,
        strategy: str | None,
        base_project: str,
        commit: str | None,
    ) -> ServiceRecord:
        """A version that runs: deployed, or found running with the repo's very digest (adopted)."""
        return cls()._with(
            images=dict(images or {}),
            vault_keys=list(vault_keys),
            project=project,
            service_dir=service_dir,
            compose_file=compose_file,
            strategy=strategy,
            base_project=base_project,
            digest=digest,
            files=files,
            commit=commit,
            deployed_at=utcnow(),
            status="ok",
            failed_digest=None,
            error=None,
        )

    @classmethod
    def never_deployed(cls, project: str, service_dir: str) -> ServiceRecord:
        """Where a service's first failure is recorded: no good version to go back to."""
        return cls()._with(project=project, service_dir=service_dir, digest=None, files={})

    def failed(self, digest: str | None, error: str) -> ServiceRecord:
        """Version ``digest`` failed (the last good version, if any, still runs)."""
        return self._with(status="failed", failed_digest=digest, error=error, failed_at=utcnow())

    def image_refreshed(self, images: t.Mapping[str, str] | None) -> ServiceRecord:
        """New images of the same version run (``images`` None: the ones recorded)."""
        changes = {} if images is None else {"images": images}
        return self._with(**changes, status="ok", error=None, deployed_at=utcnow())

    def image_refresh_failed(self, images: t.Mapping[str, str] | None, error: str | None) -> ServiceRecord:
        """New images failed; ``images``: what runs now (None: the ones recorded)."""
        changes = {} if images is None else {"images": images}
        return self._with(**changes, status="failed", error=error, failed_at=utcnow())

    def healed(self) -> ServiceRecord:
        """The last good version runs with nothing done to it: a failure recorded before is over."""
        return self._with(status="ok", error=None, failed_digest=None)


class StateStore:
    """``state.json``: one entry per service podops has deployed (or tried to)."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)

    def load(self) -> dict[str, ServiceRecord]:
        """Services recorded so far; an unreadable file is an error that names the file and the fix."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise PodopsError(f"cannot read the podops state file {self.path}: {exc}; fix its permissions or move it away") from exc
        except json.JSONDecodeError as exc:
            raise PodopsError(
                f"the podops state file {self.path} is not valid JSON (line {exc.lineno}): {exc.msg}. "
                "Move it away and run again: podops rebuilds what is running from the container labels."
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
            raise PodopsError(f"the podops state file {self.path} has no 'services' mapping; move it away and run again")
        wrong = sorted(str(name) for name, entry in data["services"].items() if not isinstance(entry, dict))
        if wrong:
            raise PodopsError(
                f"the podops state file {self.path} has entries that are not mappings ({', '.join(wrong)}): "
                "it was not written by podops. Move it away and run again: podops rebuilds what is running from the container labels."
            )
        return {name: ServiceRecord.from_dict(entry) for name, entry in data["services"].items()}

    def save(self, services: t.Mapping[str, ServiceRecord]) -> None:
        ensure_dir(self.state_dir)
        write_json(self.path, {"version": STATE_VERSION, "services": {name: record.to_dict() for name, record in services.items()}})


class LockBusy(PodopsError):
    """The host lock is held by another run for longer than the caller would wait."""


class HostLock:
    """One reconcile per host: an flock on ``<state_dir>/reconcile.lock``.

    The kernel drops an flock when its holder dies, so a crashed run never locks the host for good.
    A wrapper that already holds the lock (``flock <lock> ansible-pull ...``) sets ``PODOPS_LOCK_HELD=1``.
    """

    def __init__(
        self,
        state_dir: str,
        timeout: float,
        holder: str,
        path: str | None = None,
        what: str = "reconcile",
        waiting: t.Callable[[str], None] | None = None,
        wrapper: bool = False,
    ):
        self.path = path or os.path.join(state_dir, "reconcile.lock")
        self.what = what
        self.timeout = timeout
        self.holder = holder
        self.waiting = waiting  # told once, with the holder, when the lock is busy and this one waits
        self._fd: int | None = None
        # Only the host lock can be held by a wrapper (podops-pull); other locks (an A/B switch's) are always
        # taken, and so is the host lock by the wrapper itself (``wrapper``).
        self.wrapper_may_hold = path is None and not wrapper

    def __enter__(self) -> HostLock:
        if self.wrapper_may_hold and os.environ.get(LOCK_ENV) == "1":
            return self
        ensure_dir(os.path.dirname(self.path))
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = self._read_holder()
                    os.close(self._fd)
                    self._fd = None
                    raise LockBusy(
                        f"another {self.what} is running on this host ({holder or 'holder unknown'}; lock {self.path}); "
                        f"waited {self.timeout:g}s. Run again when it has finished (a timer does on its next tick), or raise podops_lock_timeout."
                    ) from None
                if self.waiting is not None:
                    self.waiting(self._read_holder())
                    self.waiting = None
                time.sleep(0.2)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, self.holder.encode() + b"\n", 0)
        return self

    def _read_holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return ""

    def __exit__(self, *exc_info: t.Any) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SnapshotStore:
    """Last good copy of each service's inputs, so a failed deploy can put the previous version back
    without git history (ansible-pull clones shallow).

    A snapshot mirrors the env repo layout (``root/services/<svc>/...`` and ``root/secrets/x.env``) so the
    compose file's relative paths, ``../../secrets/x.env`` included, resolve inside the snapshot. Entries of
    the live service folder that the snapshot does not hold (untracked data folders such as ``./data``)
    become symlinks to the live ones: a rollback never starts a service on an empty data folder.
    """

    def __init__(self, state_dir: str):
        self.base = os.path.join(state_dir, "snapshots")

    def path(self, service: str) -> str:
        return os.path.join(self.base, service)

    def service_dir(self, service: str, rel_service_dir: str) -> str | None:
        """The snapshot's copy of the service folder, or None when there is no snapshot."""
        for candidate in (self.path(service), self.path(service) + ".old"):
            meta = os.path.join(candidate, "snapshot.json")
            if os.path.isfile(meta):
                return os.path.join(candidate, "root", rel_service_dir)
        return None

    def save(self, service: str, repo_dir: str, rel_service_dir: str, files: t.Iterable[str]) -> None:
        """Copy ``files`` (relative to the service folder; may climb out of it) into a new snapshot.
        ansible-vault files are copied encrypted."""
        ensure_dir(self.base)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{service}-", dir=self.base)
        try:
            mirror(os.path.join(tmp, "root"), repo_dir, rel_service_dir, files)
            write_json(os.path.join(tmp, "snapshot.json"), {"service": service, "service_dir": rel_service_dir})
            self._swap(service, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _swap(self, service: str, new: str) -> None:
        current, old = self.path(service), self.path(service) + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(current):
            os.replace(current, old)
        os.replace(new, current)
        shutil.rmtree(old, ignore_errors=True)

    def remove(self, service: str) -> None:
        for candidate in (self.path(service), self.path(service) + ".old"):
            shutil.rmtree(candidate, ignore_errors=True)


def mirror(
    root: str,
    repo_dir: str,
    rel_service_dir: str,
    files: t.Iterable[str],
    plaintexts: t.Mapping[str, bytes] | None = None,
    live_dir: str | None = None,
) -> str:
    """Copy a service's ``files`` from ``repo_dir`` into ``root`` with the repo layout kept; return the copy
    of the service folder. ``plaintexts`` (by real path) are written instead of the encrypted files, 0600.
    Entries of ``live_dir`` (default: the service folder) the copy lacks are linked to the live ones."""
    source_dir = os.path.join(repo_dir, rel_service_dir)
    copy_dir = os.path.join(root, rel_service_dir)
    os.makedirs(copy_dir, mode=0o700, exist_ok=True)
    repo_real = os.path.realpath(repo_dir)
    for rel in files:
        source = os.path.normpath(os.path.join(source_dir, rel))
        inside = os.path.relpath(os.path.realpath(os.path.dirname(source)), repo_real)
        if os.path.isabs(rel) or inside.startswith(".."):
            continue  # outside the repo (absolute env files): used live, not copied
        target = os.path.normpath(os.path.join(copy_dir, rel))
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        plaintext = (plaintexts or {}).get(os.path.realpath(source))
        if plaintext is not None:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(plaintext)
        elif os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isfile(source):
            shutil.copy2(source, target)
    _link_untracked(live_dir or source_dir, copy_dir)
    return copy_dir


class RuntimeStore:
    """Decrypted copies of services with ansible-vault files, root-only (0700 folders, 0600 files); with
    ``base``, the copies a blue-green slot runs from (``<state_dir>/slots``: its files stay as they were
    while the repo moves on and the other slot starts).

    Under /run/podops as root (tmpfs: gone at reboot), ``$XDG_RUNTIME_DIR/podops`` otherwise, else
    ``<state_dir>/runtime``. A copy is made for each ``up`` and replaced atomically; env files are
    removed once the containers are created (podman read them); mounted files stay while the service runs.
    """

    def __init__(self, state_dir: str, base: str | None = None):
        if base:
            self.base = base
        elif os.geteuid() == 0 and os.path.isdir("/run"):
            self.base = "/run/podops/" + _slug(state_dir)
        elif os.environ.get("XDG_RUNTIME_DIR"):
            self.base = os.path.join(os.environ["XDG_RUNTIME_DIR"], "podops", _slug(state_dir))
        else:
            self.base = os.path.join(state_dir, "runtime")

    def path(self, service: str) -> str:
        return os.path.join(self.base, service)

    def prepare(
        self, service: str, repo_dir: str, rel_service_dir: str, files: t.Iterable[str], plaintexts: t.Mapping[str, bytes], live_dir: str | None = None
    ) -> str:
        ensure_dir(self.base)
        os.chmod(self.base, 0o700)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{service}-", dir=self.base)
        try:
            copy_dir = mirror(os.path.join(tmp, "root"), repo_dir, rel_service_dir, files, plaintexts, live_dir)
            if not plaintexts:
                # Nothing secret in it: let containers that run as another user read it as they would the repo.
                for folder, _dirs, _files in os.walk(tmp):
                    os.chmod(folder, 0o755)  # noqa: S103 - copies of repo files, no secrets
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        current = self.path(service)
        shutil.rmtree(current, ignore_errors=True)
        os.replace(tmp, current)
        return os.path.join(current, os.path.relpath(copy_dir, tmp))

    def remove(self, service: str) -> None:
        shutil.rmtree(self.path(service), ignore_errors=True)


def _slug(path: str) -> str:
    """One runtime folder per state folder, so two podops instances never share one."""
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]


def _link_untracked(live_dir: str, snap_dir: str) -> None:
    """Symlink every entry of ``live_dir`` that the snapshot does not hold (data folders, untracked files)."""
    try:
        names = os.listdir(live_dir)
    except OSError:
        return
    for name in names:
        live, snap = os.path.join(live_dir, name), os.path.join(snap_dir, name)
        if os.path.lexists(snap):
            if os.path.isdir(snap) and not os.path.islink(snap) and os.path.isdir(live) and not os.path.islink(live):
                _link_untracked(live, snap)
            continue
        os.symlink(os.path.abspath(live), snap)
