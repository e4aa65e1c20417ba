# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plan: which services to deploy, which are unchanged, which left the repo - and why.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Read-only and check-mode safe. One pass over all services: one ``git ls-files``, one ``podman ps``,
the digests, the state store. Nothing here starts, stops or writes anything.
"""

from __future__ import annotations

import fnmatch
import os
import re
import typing as t
from dataclasses import dataclass, field

from ._common import LABEL_COMMIT, LABEL_DIGEST, LABEL_PREFIX, LABEL_SERVICE, SERVICE_NAME_RE, PodopsError, Runner
from ._compose import ComposeProject, ParsedCompose, find_compose_file, load_project
from ._digest import MISSING, Secrets, changed_files, digest_of, file_map, git_commit, git_tracked_files, walk_files
from ._podman import Container
from ._state import SLOTS, ServiceRecord, slot_project

# plan actions (what would happen) -> report actions (what happened)
DEPLOY, UNCHANGED, ORPHANED, FAILED = "deploy", "unchanged", "orphaned", "failed"


@dataclass
class ServiceSpec:
    """One service of the env repo as the plan sees it."""

    name: str
    rel_dir: str  # relative to the repo: services/<name>
    service_dir: str  # absolute
    project_name: str
    project: ComposeProject | None = None
    files: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    error: str | None = None
    squatters: list[str] = field(default_factory=list)  # containers holding this project's names, made by hand
    vault_files: list[str] = field(default_factory=list)  # real paths of its ansible-vault files
    live_project: str = ""  # the compose project that serves it: project_name, or a blue-green slot's

    @property
    def blue_green(self) -> bool:
        return self.project is not None and self.project.settings.blue_green

    def projects(self) -> list[str]:
        """Every compose project this service may run as (both slots for blue-green)."""
        return [slot_project(self.project_name, slot) for slot in SLOTS] if self.blue_green else [self.project_name]


@dataclass
class PlanItem:
    name: str
    action: str
    reason: str
    project_name: str
    digest: str | None = None
    previous_digest: str | None = None
    changed_files: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "project": self.project_name,
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "changed_files": list(self.changed_files),
            "error": self.error,
        }


@dataclass
class Plan:
    commit: str | None
    items: dict[str, PlanItem]
    specs: dict[str, ServiceSpec]
    live: dict[str, list[Container]]
    warnings: list[str] = field(default_factory=list)

    def by_action(self, action: str) -> list[PlanItem]:
        return [item for item in self.items.values() if item.action == action]

    def would_change(self, prune: bool) -> bool:
        """What a real run's verdict would say of ``changed`` for this plan: a deploy, or an orphan it prunes (an
        orphan that is kept changes nothing; see ``_report.CHANGED_ACTIONS``)."""
        return any(item.action == DEPLOY or (prune and item.action == ORPHANED) for item in self.items.values())


def project_name(prefix: str, service: str, compose_name: str | None = None) -> str:
    """Compose project name: prefix + the compose file's ``name:`` or the folder name, normalised."""
    raw = (prefix or "") + (compose_name or service)
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()) or "podops"


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def select(names: t.Sequence[str], selectors: t.Sequence[str] | None) -> tuple[set[str], list[str]]:
    """Names matching ``podops_services`` (names or globs). A plain name that is not there is an error."""
    if not selectors:
        return set(names), []
    chosen: set[str] = set()
    warnings = []
    for pattern in selectors:
        matched = {name for name in names if fnmatch.fnmatchcase(name, pattern)}
        if not matched:
            if not _is_glob(pattern):
                raise PodopsError(f"podops_services names {pattern!r}, which is not a service of this env repo. Services: {', '.join(sorted(names)) or 'none'}")
            warnings.append(f"podops_services pattern {pattern!r} matches no service")
        chosen |= matched
    return chosen, warnings


def list_services(services_path: str) -> tuple[list[str], list[str]]:
    """Names of the service folders (a folder with a compose file), sorted, and warnings for the rest."""
    if not os.path.isdir(services_path):
        raise PodopsError(
            f"the services folder {services_path} does not exist; nothing was changed. Point podops_repo_dir at your env repo "
            "checkout (-e podops_repo_dir=/path/to/env-repo), put one folder per service there, or set podops_services_dir."
        )
    warnings: list[str] = []
    names = []
    folder = os.path.basename(os.path.normpath(services_path))
    for entry in sorted(os.listdir(services_path)):
        path = os.path.join(services_path, entry)
        if entry.startswith(".") or not os.path.isdir(path):
            continue  # stray files (README.md, .gitkeep) are never services
        if not SERVICE_NAME_RE.match(entry):
            warnings.append(f"{folder}/{entry} ignored: a service folder name may use letters, digits, '.', '_' and '-'")
            continue
        if find_compose_file(path) is None:
            warnings.append(f"{folder}/{entry} ignored: it has no compose file")
            continue
        names.append(entry)
    return names, warnings


def discover(
    runner: Runner,
    repo_dir: str,
    services_dir: str,
    prefix: str,
    selectors: t.Sequence[str] | None = None,
    secrets: Secrets | None = None,
    compose_cache: ParsedCompose | None = None,
) -> tuple[dict[str, ServiceSpec], set[str], list[str], str | None]:
    """Read every service folder: compose model, file map, digest. Per-service problems become
    ``spec.error`` (that service fails, the others go on); problems with the repo as a whole raise.
    ``compose_cache``: compose files parsed by an earlier plan (see ParsedCompose)."""
    if not os.path.isdir(repo_dir):
        raise PodopsError(f"podops_repo_dir {repo_dir} does not exist or is not a folder; point it at a checkout of your env repo")
    services_path = os.path.join(repo_dir, services_dir)
    candidates, warnings = list_services(services_path)
    if not candidates:
        raise PodopsError(
            f"the services folder {services_path} holds no service (a folder with a compose file); "
            "refusing to go on, so that an empty checkout never looks like 'remove everything'. Nothing was changed."
        )
    selected, select_warnings = select(candidates, selectors)
    warnings += select_warnings

    commit = git_commit(runner, repo_dir)
    tracked = git_tracked_files(runner, repo_dir, services_dir) if commit is not None else None
    by_service = _tracked_by_service(tracked, services_dir) if tracked is not None else None

    specs: dict[str, ServiceSpec] = {}
    for name in candidates:
        if name not in selected:
            continue
        rel_dir = os.path.join(os.path.normpath(services_dir), name)
        spec = ServiceSpec(name=name, rel_dir=rel_dir, service_dir=os.path.join(repo_dir, rel_dir), project_name=project_name(prefix, name))
        specs[name] = spec
        # None: git cannot say which files belong (no checkout, or a folder not committed yet): walk it.
        rel_files = by_service.get(name) if by_service is not None else None
        if by_service is not None and rel_files is None:
            warnings.append(f"{rel_dir} is not committed to git: all its files are digested until it is")
        _read_service(spec, rel_files, runner, repo_dir, prefix, by_service is not None, secrets, warnings, compose_cache)
    mark_project_clashes(specs)
    return specs, set(candidates), warnings, commit


def _tracked_by_service(tracked: t.Iterable[str], services_dir: str) -> dict[str, list[str]]:
    """git's tracked files under the services folder, per service folder, relative to it."""
    by_service: dict[str, list[str]] = {}
    root = os.path.normpath(services_dir) + "/"
    for path in tracked:
        if path.startswith(root):
            name, _sep, rest = path[len(root) :].partition("/")
            if rest:
                by_service.setdefault(name, []).append(rest)
    return by_service


def _read_service(
    spec: ServiceSpec,
    rel_files: list[str] | None,
    runner: Runner,
    repo_dir: str,
    prefix: str,
    git_knows: bool,
    secrets: Secrets | None,
    warnings: list[str],
    compose_cache: ParsedCompose | None = None,
) -> None:
    """A service's compose model, file map and digest; a problem becomes ``spec.error`` (its files are still
    digested, so that fixing it is a change)."""
    try:
        spec.project = load_project(spec.service_dir, cache=compose_cache)
        if rel_files is None:
            data = spec.project.writable_binds()
            rel_files = [rel for rel in walk_files(spec.service_dir) if not under_any(rel, data)]
        spec.project_name = project_name(prefix, spec.name, spec.project.name)
        compose_rel = os.path.join(spec.rel_dir, os.path.basename(spec.project.compose_file))
        for variable in spec.project.unset:
            warnings.append(
                f"{compose_rel}: variable {variable} is not set (not in {os.path.join(spec.rel_dir, '.env')} nor the environment); "
                "it is replaced by an empty string"
            )
        always = [(os.path.basename(spec.project.compose_file), spec.project.compose_file, True)]
        always += [(env_key(ref.ref, ref.path, spec.service_dir), ref.path, ref.required) for ref in spec.project.env_files]
        always += referenced_files(spec, runner, repo_dir, git_knows)
        spec.files = file_map(spec.service_dir, rel_files, always, spec.project.settings.ignore, secrets)
        if secrets is not None:
            check_vault_files(spec, secrets)
    except PodopsError as exc:
        spec.error = str(exc)
        try:
            spec.files = file_map(spec.service_dir, rel_files if rel_files is not None else walk_files(spec.service_dir))
        except PodopsError:
            spec.files = {}
    spec.digest = digest_of(spec.files)


def under_any(rel: str, folders: t.Iterable[str]) -> bool:
    return any(rel == folder or rel.startswith(folder.rstrip("/") + "/") for folder in folders)


def check_vault_files(spec: ServiceSpec, secrets: Secrets) -> None:
    """Note the service's ansible-vault files; one the controller could not decrypt fails the service."""
    if not secrets.seen:  # no vault file met while digesting, this service's included: no path to resolve
        return
    failures: dict[str, list[str]] = {}
    for key in sorted(spec.files):
        path = os.path.realpath(os.path.join(spec.service_dir, key))
        if not secrets.is_vault(path):
            continue
        spec.vault_files.append(path)
        error = secrets.error(path)
        if error is None and secrets.provided and secrets.plaintext(path) is None:
            error = "it was not decrypted (no vault password given?)"
        if error:
            failures.setdefault(error, []).append(key)
    if failures:
        raise PodopsError("; ".join(f"cannot decrypt {', '.join(keys)}: {error}" for error, keys in failures.items()))


MAX_FOLDER_FILES = 2000


def referenced_files(spec: ServiceSpec, runner: Runner, repo_dir: str, in_git: bool) -> list[tuple[str, str, bool]]:
    """``always`` entries for the files a project reads beyond its folder and env files.

    Secrets, configs, extends and include files count whether git tracks them or not (secrets are often
    host-local). Bind mounts from ``../`` count with their git-tracked files only: what git does not track
    there is data the service writes, and digesting it would redeploy on every run."""
    entries = []
    for ref, path, is_dir, kind in spec.project.referenced_paths() if spec.project else []:
        if kind == "bind":
            rel = os.path.relpath(path, repo_dir)
            if not in_git or rel.startswith(".."):
                continue
            for name in git_tracked_files(runner, repo_dir, rel) or []:
                full = os.path.join(repo_dir, name)
                entries.append((env_key(os.path.relpath(full, spec.service_dir), full, spec.service_dir), full, False))
            continue
        if not is_dir:
            # A secret, config, extends or include file compose needs: missing, it fails the plan, not the deploy.
            entries.append((env_key(ref, path, spec.service_dir), path, True))
            continue
        names = walk_files(path)
        if len(names) > MAX_FOLDER_FILES:
            raise PodopsError(
                f"{ref} (mounted by the compose file) holds more than {MAX_FOLDER_FILES} files; podops digests what a "
                "service reads from outside its folder. Mount data folders by absolute path, or move the files into the service folder."
            )
        for name in names:
            full = os.path.join(path, name)
            entries.append((env_key(os.path.join(ref, name), full, spec.service_dir), full, False))
    return entries


def env_key(ref: str, path: str, service_dir: str) -> str:
    """How a file the project reads is named in the file map: like the tracked files, relative to the
    service folder (``app.env``, ``../../secrets/app.env``); absolute when written absolute."""
    return path if os.path.isabs(os.path.expanduser(ref)) else os.path.relpath(path, service_dir)


def mark_project_clashes(specs: t.Mapping[str, ServiceSpec]) -> None:
    """Two folders that resolve to one compose project would remove each other's containers."""
    owners: dict[str, list[str]] = {}
    for spec in specs.values():
        owners.setdefault(spec.project_name, []).append(spec.name)
    for project, names in owners.items():
        if len(names) > 1:
            for name in names:
                specs[name].error = (
                    f"services {', '.join(sorted(names))} all use the compose project name {project!r}; "
                    "give each its own top-level 'name:' (or none, to use the folder name)"
                )
    holders: dict[str, list[str]] = {}
    for spec in specs.values():
        for container in spec.project.container_names(spec.project_name).values() if spec.project else []:
            holders.setdefault(container, []).append(spec.name)
    for container, names in holders.items():
        if len(set(names)) > 1:
            for name in set(names):
                specs[name].error = specs[name].error or (
                    f"services {', '.join(sorted(set(names)))} all declare container_name {container!r}; "
                    "a container name is global on the host: give each service its own"
                )


def live_by_project(containers: t.Iterable[Container]) -> dict[str, list[Container]]:
    grouped: dict[str, list[Container]] = {}
    for container in containers:
        grouped.setdefault(container.project, []).append(container)
    return grouped


def find_squatters(spec: ServiceSpec, by_name: t.Mapping[str, Container]) -> list[str]:
    """Containers that hold a name this project's containers must have but are not part of the project
    (recreated by hand with ``podman run --name ...``): podman-compose could not create ours beside them."""
    if spec.project is None:
        return []
    squatters = []
    for name in spec.project.container_names(spec.project_name).values():
        container = by_name.get(name)
        if container is not None and container.project != spec.project_name:
            squatters.append(name)
    return squatters


def foreign_owner(spec: ServiceSpec, by_name: t.Mapping[str, Container], state: t.Mapping[str, ServiceRecord], prefix: str) -> str | None:
    """A container_name of this service held by a container podops deployed for someone else - another env repo,
    another prefix - named from its io.podops.* labels. Taking it would break that deploy, so the service fails and
    nothing changes. A service of this repo that left it, or was renamed, is this repo's: it is taken over."""
    for name in spec.squatters:
        labels = by_name[name].labels
        owner = labels.get(LABEL_SERVICE)
        if not owner:
            continue  # made by hand: the deploy replaces it (drift)
        # This state folder deployed that very project (an old compose name, a folder renamed or removed).
        recorded = state.get(owner) or ServiceRecord()
        if labels.get(LABEL_PREFIX, "") == (prefix or "") and recorded.project == by_name[name].project:
            continue
        other_prefix = labels.get(LABEL_PREFIX, "")
        commit = (labels.get(LABEL_COMMIT) or "")[:12] or "unknown"
        return (
            f"container_name {name!r} is taken by a container podops deployed for another owner: service {owner!r}"
            f"{f' with project prefix {other_prefix!r}' if other_prefix else ' (no project prefix)'}, compose project "
            f"{by_name[name].project or 'none'}, commit {commit}. A container name is global on the host: give this service "
            "another container_name (or remove it from one of the env repos). Nothing was changed."
        )
    return None


def drift_reason(spec: ServiceSpec, recorded_digest: str, containers: t.Sequence[Container]) -> str | None:
    """Why the running project is not what podops deployed, or None when it is."""
    if spec.squatters:
        return f"container(s) {', '.join(spec.squatters)} were replaced by hand"
    if not containers:
        return "no container is running"
    oneshot = set(spec.project.jobs()) if spec.project else set()
    for container in containers:
        if LABEL_DIGEST not in container.labels:
            return f"container {container.name} was not started by podops"
        if container.labels.get(LABEL_SERVICE) != spec.name:
            return f"container {container.name} was deployed as service {container.labels.get(LABEL_SERVICE)!r}"
        if container.labels.get(LABEL_DIGEST) != recorded_digest:
            return f"container {container.name} runs another version"
        if container.state != "running" and not (container.compose_service in oneshot and container.exit_code == 0):
            return f"container {container.name} is {container.state}"
    if spec.project:
        present = {container.compose_service for container in containers}
        missing = sorted(set(spec.project.started_services()) - present)
        if missing:
            return f"compose service(s) {', '.join(missing)} have no container"
    return None


def decide(spec: ServiceSpec, recorded: ServiceRecord | None, containers: t.Sequence[Container]) -> PlanItem:
    """The plan for one service in the repo."""
    item = PlanItem(name=spec.name, action=UNCHANGED, reason="unchanged", project_name=spec.project_name, digest=spec.digest)
    recorded = recorded or ServiceRecord()
    item.previous_digest = recorded.digest
    if spec.error:
        item.action, item.reason, item.error = FAILED, "invalid", spec.error
        item.changed_files = changed_files(recorded.files, spec.files) if recorded.files else []
        return item
    if not recorded.digest:
        if containers and drift_reason(spec, spec.digest or "", containers) is None:
            item.reason = "adopted"  # running with this very digest (state lost or first run of a new state dir)
            return item
        item.action = DEPLOY
        item.reason = "retry" if recorded.failed_digest == spec.digest else "new"
        item.changed_files = sorted(rel for rel, entry in spec.files.items() if entry != MISSING)
        return item
    if recorded.digest != spec.digest:
        item.action = DEPLOY
        item.reason = "retry" if recorded.failed_digest == spec.digest else "changed"
        item.changed_files = changed_files(recorded.files, spec.files)
        return item
    why = drift_reason(spec, recorded.digest, containers)
    if why:
        item.action, item.reason, item.error = DEPLOY, "drift", why
    return item


def serving_project(spec: ServiceSpec, recorded: ServiceRecord | None, by_project: t.Mapping[str, list[Container]]) -> str:
    """The compose project whose containers serve ``spec``: for blue-green, the slot podops made active
    (recorded), else a slot that has containers."""
    if not spec.blue_green:
        return spec.project_name
    slots = spec.projects()
    recorded_project = recorded.project if recorded else None
    if recorded_project in slots:
        return recorded_project
    return next((project for project in slots if by_project.get(project)), slots[0])


def make_plan(
    runner: Runner,
    repo_dir: str,
    services_dir: str,
    state: t.Mapping[str, ServiceRecord],
    containers: t.Sequence[Container] | t.Callable[[], t.Sequence[Container]],
    prefix: str = "",
    selectors: t.Sequence[str] | None = None,
    with_orphans: bool = True,
    secrets: Secrets | None = None,
    compose_cache: ParsedCompose | None = None,
) -> Plan:
    """The plan of a run. ``containers`` (or a callable that returns them, asked once the repo is read, so the
    listing can run meanwhile) is what ``podman ps -a`` shows."""
    specs, in_repo, warnings, commit = discover(runner, repo_dir, services_dir, prefix, selectors, secrets, compose_cache)
    if callable(containers):
        containers = containers()
    # ``containers`` may be every container of the host: compose projects are matched by name, orphans
    # only among containers podops labelled with this prefix.
    by_project = live_by_project(c for c in containers if c.project)
    by_name = {c.name: c for c in containers}
    for spec in specs.values():
        spec.squatters = find_squatters(spec, by_name)
        spec.error = spec.error or foreign_owner(spec, by_name, state, prefix)
        spec.live_project = serving_project(spec, state.get(spec.name), by_project)
    items = {name: decide(spec, state.get(name), by_project.get(spec.live_project, [])) for name, spec in specs.items()}
    if not with_orphans:
        return Plan(commit=commit, items=dict(sorted(items.items())), specs=specs, live=by_project, warnings=warnings)
    live = live_by_project(c for c in containers if LABEL_SERVICE in c.labels and c.labels.get(LABEL_PREFIX, "") == (prefix or ""))

    # Orphans: deployed by podops (state or labels) but no longer a selected service of the repo.
    orphans: dict[str, str] = {}
    for name, recorded in state.items():
        if name not in specs and (recorded.digest or recorded.project):
            orphans[name] = recorded.project or project_name(prefix, name)
    owned_projects = {project for spec in specs.values() for project in spec.projects()}
    for project, members in live.items():
        service = members[0].labels.get(LABEL_SERVICE, "")
        if project not in owned_projects and service and service not in specs:
            orphans.setdefault(service, project)
    for name, project in sorted(orphans.items()):
        # A folder renamed with the compose project kept (top-level name:): the project is now another
        # service's; pruning it would take that service down.
        reason = "renamed" if project in owned_projects else "deselected" if name in in_repo else "removed"
        items[name] = PlanItem(name=name, action=ORPHANED, reason=reason, project_name=project, previous_digest=state[name].digest if name in state else None)
    return Plan(commit=commit, items=dict(sorted(items.items())), specs=specs, live=by_project, warnings=warnings)
