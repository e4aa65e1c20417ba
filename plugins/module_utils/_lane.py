# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fast lane: podops-pull runs the reconcile engine itself when only service folders changed.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

A host's trigger (timer, cron, webhook) runs ``podops-pull``, which runs the env repo's playbook. Most ticks
change nothing, and most commits touch one service folder; for those, starting ``ansible-playbook`` costs
more than the reconcile itself. So:

1. every real ``compose_deploy`` run (not check mode, not a redeploy) writes ``<state>/engine.json``: the
   engine options it ran with (never a secret) and the podman environment it saw;
2. after a playbook run that succeeded, podops-pull *promotes* it to ``<state>/fast-lane.json`` with the
   deployed commit, the time, podops-pull's own arguments and a fingerprint of the installed collection -
   but only when the playbook called ``compose_deploy`` exactly once and the repo has no ansible-vault
   files (their plaintext needs the vault password, which only Ansible has);
3. on the next run podops-pull takes the lane - the same engine, in its own process, with those options -
   when all of this holds, and runs the full playbook otherwise (saying why):
   - the lane record exists and is younger than ``fast_lane_max_age`` (a full run at least that often
     applies everything else the playbook does: registry logins, the webhook shim, your own plays);
   - the collection and podops-pull's arguments (apart from the trigger, the run ID and a redeploy's
     ``podops_service``) are unchanged;
   - every file that changed between the recorded commit and the new one is under the services folder;
   - the engine needs no vault plaintext (it stops before changing anything when it would).

A redeploy (``-e podops_service=NAME``: the webhook's package and release events) takes the same lane: the
engine redeploys that one service with fresh images, with the options the last full run used.

A failed playbook run forgets the lane, so the next run is a full one again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import typing as t
from dataclasses import dataclass

from ._common import FALLBACK_TIMEOUT, TIMEOUT_DEFAULTS, PodopsError
from ._process import run_process
from ._state import LOCK_ENV, write_json

ENGINE_FILE = "engine.json"
LANE_FILE = "fast-lane.json"
FORMAT = 1
DEFAULT_MAX_AGE = 3600.0
# What podman, podman-compose and git read from the environment (none of it secret: it is in /proc too).
ENV_KEYS = ("PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")
ENV_PREFIXES = ("CONTAINERS_", "CONTAINER_", "PODMAN_", "BUILDAH_", "STORAGE_")


def engine_env(environ: t.Mapping[str, str]) -> dict[str, str]:
    """The part of a module's environment the engine's commands depend on."""
    return {key: value for key, value in environ.items() if key in ENV_KEYS or key.startswith(ENV_PREFIXES)}


def _read(path: str) -> dict[str, t.Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _forget(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def record_engine_call(options: t.Any, run_id: str, environ: t.Mapping[str, str]) -> None:
    """Called by the module after a real reconcile: what the engine ran with, for podops-pull to promote."""
    path = os.path.join(options.state_dir, ENGINE_FILE)
    previous = _read(path) or {}
    calls = int(previous.get("calls") or 0) + 1 if previous.get("run_id") == run_id else 1
    secrets = options.secrets
    write_json(
        path,
        {
            "format": FORMAT,
            "run_id": run_id,
            "calls": calls,
            "vault": bool(secrets.provided or secrets.found or secrets.seen),
            "options": options.replayable(),
            "env": engine_env(environ),
        },
    )


def collection_fingerprint(root: str | None = None) -> str:
    """Size and mtime of every file of the installed collection: a new version (or an edit) changes it."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digest = hashlib.sha256()
    for part in ("plugins", "roles", "playbooks", "MANIFEST.json", "galaxy.yml"):
        top = os.path.join(root, part)
        if os.path.isfile(top):
            stat = os.stat(top)
            digest.update(f"{part}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        for current, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                full = os.path.join(current, name)
                with contextlib.suppress(OSError):
                    stat = os.stat(full)
                    digest.update(f"{os.path.relpath(full, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def promote(state_dir: str, run_id: str, commit: str, args: t.Sequence[str], fingerprint: str, now: float | None = None) -> str | None:
    """After a playbook run that succeeded: open the lane for the next runs. Returns why not, or None."""
    lane_path = os.path.join(state_dir, LANE_FILE)
    _forget(lane_path)
    engine = _read(os.path.join(state_dir, ENGINE_FILE))
    if not engine or engine.get("format") != FORMAT or engine.get("run_id") != run_id:
        return "the playbook did not run podops.gitops.compose_deploy (so every run is a full one)"
    if engine.get("calls") != 1:
        return "the playbook ran podops.gitops.compose_deploy more than once (so every run is a full one)"
    if engine.get("vault"):
        return "the env repo has ansible-vault files, which only the playbook can decrypt (so every run is a full one)"
    write_json(
        lane_path,
        {
            "format": FORMAT,
            "commit": commit,
            "full_run_id": run_id,
            "full_at": time.time() if now is None else now,
            "args": list(args),
            "fingerprint": fingerprint,
            "options": engine["options"],
            "env": engine.get("env") or {},
        },
    )
    return None


def forget(state_dir: str) -> None:
    """A failed playbook run closes the lane: the next run is a full one."""
    _forget(os.path.join(state_dir, LANE_FILE))


@dataclass
class Lane:
    options: dict[str, t.Any]
    env: dict[str, str]
    changed: bool = False  # the commit moved since the last run: a deploy is likely (see Reconciler's warm_compose)


def changed_paths(repo_dir: str, old: str, new: str) -> list[str]:
    """Files that differ between two commits of the checkout (both must be in its object store)."""
    if old == new:  # a tick at the commit of the last full run: nothing to ask git
        return []
    rc, out, err = run_process(
        ["git", "-c", f"safe.directory={os.path.realpath(repo_dir)}", "-C", repo_dir, "diff", "--no-renames", "--name-only", "-z", old, new, "--"],
        timeout=TIMEOUT_DEFAULTS["podman"],
    )
    if rc != 0:
        message = err.strip().splitlines()
        raise PodopsError(f"cannot compare {old[:12]} with {new[:12]}: {message[-1] if message else 'git diff failed'}")
    return [path for path in out.split("\0") if path]


def decide(
    state_dir: str,
    repo_dir: str,
    commit: str,
    args: t.Sequence[str],
    fingerprint: str,
    max_age: float = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> tuple[Lane | None, str]:
    """``(Lane, why)`` when this run may skip the playbook, else ``(None, why not)``."""
    if max_age <= 0:
        return None, "the fast lane is off (fast_lane_max_age 0)"
    lane = _read(os.path.join(state_dir, LANE_FILE))
    if not lane or lane.get("format") != FORMAT:
        return None, "no full run recorded since the last change of the playbook, the collection or a failure"
    now = time.time() if now is None else now
    age = now - float(lane.get("full_at") or 0)
    if not 0 <= age <= max_age:
        return None, f"the last full run was {age:.0f}s ago (fast_lane_max_age {max_age:g}s)"
    if lane.get("fingerprint") != fingerprint:
        return None, "the podops.gitops collection changed since the last full run"
    if lane.get("args") != list(args):
        return None, "podops-pull's arguments differ from the last full run's"
    options = lane.get("options") or {}
    # (Which options a record holds is the collection's business: a new version changes the fingerprint.)
    if os.path.realpath(str(options.get("repo_dir"))) != os.path.realpath(repo_dir):
        return None, "the last full run reconciled another checkout"
    if os.path.realpath(str(options.get("state_dir"))) != os.path.realpath(state_dir):
        return None, "the last full run used another state folder"
    if commit == lane.get("commit"):
        return Lane(options, dict(lane.get("env") or {})), "no new commit since the last run"
    try:
        paths = changed_paths(repo_dir, str(lane.get("commit")), commit)
    except PodopsError as exc:
        return None, str(exc)
    services = os.path.normpath(str(options.get("services_dir") or "services")).strip("/") + "/"
    outside = [path for path in paths if not path.startswith(services)]
    if outside:
        more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
        return None, f"{outside[0]}{more} changed outside {services}"
    return Lane(options, dict(lane.get("env") or {}), changed=bool(paths)), f"{len(paths)} changed file(s), all under {services}"


def process_runner(env: t.Mapping[str, str]) -> t.Callable[..., tuple[int, str, str]]:
    """The engine's command runner outside Ansible: argv lists, no shell, C locale, like the module's."""
    base = dict(env)
    base.update(LC_ALL="C", LANG="C")

    def run(args: list[str], cwd: str | None = None, env: t.Mapping[str, str] | None = None, timeout: float | None = None) -> tuple[int, str, str]:
        return run_process(args, cwd=cwd, env={**base, **(env or {})}, timeout=timeout or FALLBACK_TIMEOUT)

    def command_environment(env: t.Mapping[str, str] | None = None) -> dict[str, str]:
        return {**base, **(env or {})}

    run.command_environment = command_environment  # type: ignore[attr-defined]
    return run


def run(lane: Lane, trigger: str, run_id: str, environ: t.Mapping[str, str], service: str | None = None) -> t.Any:
    """The reconcile of a lane, in this process, under the host lock the caller holds; with ``service``, the
    redeploy of that one service with fresh images (what ``-e podops_service=NAME`` runs through the playbook),
    with the settings of the last full run.

    Returns the engine's result, or None when the run needs ansible-vault plaintext (nothing was changed:
    the caller runs the playbook instead). Raises PodopsError like the module fails.
    """
    from ._deliver import load_settings
    from ._podman import find_executable
    from ._reconcile import Options, Reconciler

    env = dict(environ)
    env.update(lane.env)
    # podman keeps conmon in the calling systemd unit's cgroup when it sees INVOCATION_ID (see podops-pull).
    env.pop("INVOCATION_ID", None)
    if os.environ.get(LOCK_ENV) != "1":
        raise PodopsError("the fast lane runs only under the host lock podops-pull holds")
    options = Options(trigger=trigger, run_id=run_id, fast_lane=True, redeploy=service, **lane.options)
    # The notifications and commit status the last full run was given (secret, so not in the lane record).
    options.notify = load_settings(options.state_dir)
    # The module found podman and podman-compose with its own PATH (the lane's env), not this process's.
    options.podman_executable = find_executable("podman", options.podman_executable, path=env.get("PATH"))
    options.compose_executable = find_executable("podman-compose", options.compose_executable, path=env.get("PATH"))
    result = Reconciler(options, process_runner(env), warm_compose=lane.changed or service is not None).run()
    return None if result.vault_needed is not None else result
