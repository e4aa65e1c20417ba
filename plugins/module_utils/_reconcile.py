# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One reconcile: lock -> plan -> prune -> apply -> record -> report (prune first: an orphan's ports and
container names are free before a new service asks for them).

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import threading
import typing as t
from dataclasses import dataclass, field

from ._apply import DEPLOYED, FAILED, ROLLED_BACK, Deployer, Outcome, apply_all
from ._common import SERVICE_NAME_RE, PodopsError, Runner, utcnow
from ._compose import COMPOSE_CACHE_FILE, ComposeProject, ParsedCompose
from ._deliver import Announcer, unexpected
from ._diff import service_diff
from ._digest import Secrets
from ._notify import NotifySettings
from ._plan import DEPLOY, ORPHANED, UNCHANGED, Plan, PlanItem, ServiceSpec, list_services, make_plan, select
from ._podman import Podman, PodmanCompose
from ._report import PROGRESS_FILE, RUN_ID_RE, TRIGGERS, Verdict, build_report, new_run_id, service_entry, verdict, write_report
from ._slots import remove_slots
from ._state import TOOLS_FILE, HostLock, ServiceFiles, ServiceRecord, SnapshotStore, StateStore, slot_of

PRUNED = "pruned"
# Lines about long waits, appended while a run goes on (podops-pull prints them as they come; see podops_pull.py).


class Progress:
    """``<state_dir>/progress.log``: emptied when a run starts, one line per notice, for the people watching."""

    def __init__(self, state_dir: str, echo: t.Callable[[str], None] | None = None):
        self.path = os.path.join(state_dir, PROGRESS_FILE)
        self.echo = echo
        self._lock = threading.Lock()

    def start(self) -> None:
        with contextlib.suppress(OSError), open(self.path, "w", encoding="utf-8"):
            os.chmod(self.path, 0o600)

    def __call__(self, line: str) -> None:
        with self._lock:
            with contextlib.suppress(OSError), open(self.path, "a", encoding="utf-8") as handle:
                handle.write(f"{line}\n")
            if self.echo is not None:
                self.echo(line)


@dataclass
class RunResult:
    """What one engine call gives every entry point: the verdict (changed, failed services, message, exit code)
    and what there is to print. ``vault_needed``: phase one of a run with ansible-vault files (nothing changed)."""

    verdict: Verdict
    report: dict[str, t.Any] = field(default_factory=dict)
    report_path: str = ""
    plan: dict[str, t.Any] = field(default_factory=dict)
    diff_text: str = ""
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    vault_needed: dict[str, str] | None = None

    @property
    def changed(self) -> bool:
        return self.verdict.changed

    @property
    def failed_services(self) -> list[str]:
        return self.verdict.failed_services

    @property
    def message(self) -> str | None:
        return self.verdict.message

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def module_result(self) -> dict[str, t.Any]:
        """The module's return values (see compose_deploy's RETURN)."""
        return {
            "changed": self.changed,
            "failed_services": self.failed_services,
            "message": self.message,
            "report": self.report,
            "report_path": self.report_path,
            "plan": self.plan,
            "summary": self.summary,
        }


@dataclass
class Options:
    repo_dir: str
    state_dir: str
    services_dir: str = "services"
    services: list[str] = field(default_factory=list)
    project_prefix: str = ""
    prune: bool = False
    trigger: str = "cli"
    run_id: str | None = None
    parallel: int = 4
    lock_timeout: float = 300.0
    keep_runs: int = 100
    podman_executable: str | None = None
    compose_executable: str | None = None
    image_updates: bool = False
    redeploy: str | None = None  # podops.gitops.redeploy: this one service, with fresh images
    secrets: Secrets = field(default_factory=Secrets)  # ansible-vault plaintexts from the action plugin
    fast_lane: bool = False  # podops-pull runs the engine itself (marks the run report)
    notify: NotifySettings | None = None  # notifications and commit status (secret: never in engine.json)

    # What podops-pull's fast lane does not replay: who asked and why, a redeploy, secrets, the lane mark.
    NOT_REPLAYED: t.ClassVar[tuple[str, ...]] = ("trigger", "run_id", "redeploy", "secrets", "fast_lane", "notify")

    def replayable(self) -> dict[str, t.Any]:
        """The options a fast-lane run reuses (``Options(trigger=..., run_id=..., fast_lane=True, **these)``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.NOT_REPLAYED}

    def validate(self) -> None:
        if not self.repo_dir:
            raise PodopsError("podops_repo_dir is empty: set it to the checkout of your env repo")
        if not os.path.isdir(self.repo_dir):
            raise PodopsError(f"podops_repo_dir {self.repo_dir} does not exist or is not a folder; point it at a checkout of your env repo")
        parts = os.path.normpath(self.services_dir).split(os.sep)
        if os.path.isabs(self.services_dir) or ".." in parts or not self.services_dir.strip():
            raise PodopsError(f"podops_services_dir must be a folder inside the env repo such as 'services', not {self.services_dir!r}")
        if not self.state_dir or not os.path.isabs(self.state_dir):
            raise PodopsError(f"podops_state_dir must be an absolute path, not {self.state_dir!r}")
        if self.trigger not in TRIGGERS:
            raise PodopsError(f"podops_trigger must be one of {', '.join(TRIGGERS)}, not {self.trigger!r}")
        if self.run_id is not None and not RUN_ID_RE.match(self.run_id):
            raise PodopsError(f"podops_run_id may only use letters, digits, '.', '_' and '-' (at most 64, not starting with '.'), not {self.run_id!r}")
        self._validate_numbers()
        if self.project_prefix and not all(c.isalnum() or c in "_-" for c in self.project_prefix):
            raise PodopsError("podops_project_prefix may only use letters, digits, '_' and '-'")
        if self.redeploy is not None:
            self.validate_redeploy()
        if self.notify is not None:
            self.notify.validate()

    def _validate_numbers(self) -> None:
        if self.parallel < 1:
            raise PodopsError(f"podops_parallel must be at least 1, not {self.parallel}")
        if self.keep_runs < 1:
            raise PodopsError(f"podops_keep_runs must be at least 1 (the run reports kept), not {self.keep_runs}")
        if self.lock_timeout < 0:
            raise PodopsError(f"podops_lock_timeout must be 0 (do not wait) or more seconds, not {self.lock_timeout:g}")

    def validate_redeploy(self) -> None:
        """The service to redeploy must be one folder of the repo: checked before anything runs."""
        name = self.redeploy or ""
        names, _warnings = list_services(os.path.join(self.repo_dir, self.services_dir))
        listing = ", ".join(names) or "none"
        if not SERVICE_NAME_RE.match(name):
            raise PodopsError(f"podops_service must be the name of one service folder (letters, digits, '.', '_', '-'), not {name!r}. Services: {listing}")
        if name not in names:
            raise PodopsError(f"podops_service {name!r} is not a service of this env repo. Services: {listing}")
        if self.services:
            chosen, _warnings = select(names, self.services)
            if name not in chosen:
                raise PodopsError(
                    f"podops_service {name!r} is not one of this host's services (podops_services: {', '.join(self.services)}); "
                    "nothing was changed. Redeploy it on the host that runs it, or add it to podops_services."
                )


def compute_plan(options: Options, runner: Runner, podman: Podman | None = None, remember: bool = False) -> tuple[Plan, dict[str, ServiceRecord]]:
    """The read-only part: state + live containers + repo -> plan (for a redeploy: of that one service).
    ``options`` must be validated (``Options.validate``) by the caller. The compose files an earlier plan parsed
    are not parsed again (``<state dir>/compose-cache.json``); ``remember``: keep this plan's for the next."""
    compose_cache = ParsedCompose(os.path.join(options.state_dir, COMPOSE_CACHE_FILE))
    state = StateStore(options.state_dir).load()
    podman = podman or Podman(runner, options.podman_executable)
    selectors = [options.redeploy] if options.redeploy else options.services
    # The host's one container listing runs while the repo is read and digested: podman's work and the
    # digests' are each most of a no-op, and they need nothing of each other.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="podops-ps") as pool:
        listing = pool.submit(podman.containers, label=None)
        try:
            plan = make_plan(
                runner,
                options.repo_dir,
                options.services_dir,
                state,
                listing.result,
                options.project_prefix,
                selectors,
                with_orphans=options.redeploy is None,
                secrets=options.secrets,
                compose_cache=compose_cache,
            )
        except PodopsError:
            listing.result()  # podman's own failure is the one to tell, as when the listing came first
            raise
    if remember and options.redeploy is None:  # a redeploy reads one service: it would forget the others'
        compose_cache.save()
    return plan, state


def vault_needed(plan: Plan, state: t.Mapping[str, ServiceRecord], secrets: Secrets, state_dir: str) -> dict[str, str]:
    """Encrypted files the controller must decrypt before this run can go on: the services' own and those of
    their snapshots (a rollback needs the old plaintext). Empty once the controller has answered."""
    if secrets.provided:
        return {}
    needed = dict(secrets.found)
    snapshots = SnapshotStore(state_dir)
    for name, spec in plan.specs.items():
        vault_keys = list(state[name].vault_keys or []) if name in state else []
        snap_dir = snapshots.service_dir(name, spec.rel_dir) if vault_keys else None
        for key in vault_keys if snap_dir else []:
            path = os.path.realpath(os.path.join(snap_dir, key))
            if path not in needed and os.path.isfile(path):
                with open(path, encoding="ascii", errors="replace") as handle:
                    needed[path] = handle.read()
    return needed


def plan_diff(plan: Plan, prune: bool, state_dir: str | None = None, secrets: Secrets | None = None) -> str:
    """What ``--diff`` shows: one line per service; with ``state_dir``, under each service to deploy the unified
    diff of its changed files against the last deployed snapshot (secrets masked, see _diff), or for a new
    service its images and published ports."""
    snapshots = SnapshotStore(state_dir) if state_dir else None
    marks = {DEPLOY: "~", UNCHANGED: "=", ORPHANED: "-", "failed": "!"}
    lines = []
    for item in plan.items.values():
        mark = "+" if item.reason == "new" else marks.get(item.action, "?")
        text = f"{mark} {item.name}: {item.action} ({item.reason})"
        if item.action == ORPHANED:
            text += ", will be pruned" if prune else ", kept: set podops_prune=true to remove it"
        if item.changed_files and item.reason != "new":
            text += ": " + ", ".join(item.changed_files)
        if item.error:
            text += f" - {item.error}"
        lines.append(text)
        spec = plan.specs.get(item.name)
        if snapshots is not None and spec is not None and item.action == DEPLOY:
            snapshot = snapshots.service_dir(item.name, spec.rel_dir) if item.previous_digest else None
            lines += service_diff(spec, item.changed_files, snapshot, secrets)
    return "\n".join(lines) + "\n"


def urls(spec: ServiceSpec | None) -> list[str]:
    """Where a service listens, for the summary (see ``project_urls``)."""
    return project_urls(spec.project) if spec is not None else []


def project_urls(project: ComposeProject | None) -> list[str]:
    """Where a compose project listens: ``udp/53`` (``udp/127.0.0.1:53``) for UDP, ``localhost:8080`` for TCP,
    and ``http://localhost:8080/`` only when the service says its ports speak HTTP (x-podops.url_scheme)."""
    if project is None:
        return []
    scheme = project.settings.url_scheme
    found = []
    for host, protocol in project.published():
        ip, _sep, port = host.rpartition(":")
        if not port:
            continue  # an empty published port (an unset variable): podman chose one, podops does not know it
        anywhere = ip in ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - a published port, not a bind
        if protocol != "tcp":
            found.append(f"{protocol}/{port}" if anywhere else f"{protocol}/{ip}:{port}")
            continue
        address = f"{'localhost' if anywhere else ip}:{port}"
        found.append(f"{scheme}://{address}/" if scheme else address)
    return found


def _record_success(spec: ServiceSpec, commit: str | None, images: t.Mapping[str, str] | None = None) -> ServiceRecord:
    """The record of ``spec``'s version running (deployed, or adopted as found)."""
    vault = set(spec.vault_files)
    return ServiceRecord.deployed(
        project=spec.live_project or spec.project_name,
        service_dir=spec.rel_dir,
        digest=spec.digest,
        files=spec.files,
        images=images,
        vault_keys=sorted(key for key in spec.files if os.path.realpath(os.path.join(spec.service_dir, key)) in vault),
        compose_file=os.path.basename(spec.project.compose_file) if spec.project else None,
        strategy=spec.project.settings.strategy if spec.project else None,
        base_project=spec.project_name,
        commit=commit,
    )


def _record_failure(recorded: ServiceRecord | None, spec: ServiceSpec, error: str) -> ServiceRecord:
    return (recorded or ServiceRecord.never_deployed(spec.project_name, spec.rel_dir)).failed(spec.digest, error)


class Reconciler:
    def __init__(self, options: Options, runner: Runner, check_mode: bool = False, warm_compose: bool = False):
        """``warm_compose``: a deploy is likely (the fast lane saw the commit move), so podman-compose's fork
        server starts while the plan is made instead of at the first deploy (about 0.3 s of its start-up)."""
        self.options = options
        self.runner = runner
        self.check_mode = check_mode
        self.warm_compose = warm_compose
        self.compose: PodmanCompose | None = None
        self.started = utcnow()
        self.run_id = options.run_id or new_run_id(self.started)
        self.services: dict[str, dict] = {}
        self.plan: Plan | None = None
        self.announcer: Announcer | None = None
        # After a rollback: the compose project now serving (the last good version's ports, not the new file's).
        self.serving: dict[str, ComposeProject] = {}
        self.progress = Progress(options.state_dir)

    def run(self) -> RunResult:
        options = self.options
        options.validate()
        holder = f"pid {os.getpid()}, trigger {options.trigger}, run {self.run_id}, since {self.started}"
        with HostLock(options.state_dir, options.lock_timeout, holder):
            try:
                return self._run_locked()
            except PodopsError as exc:
                report = build_report(
                    self.run_id, options.trigger, None, self.started, self.check_mode, self.services, error=str(exc), fast_lane=options.fast_lane
                )
                self._announce(report)
                write_report(options.state_dir, report, options.keep_runs)
                raise

    def _run_locked(self) -> RunResult:
        options = self.options
        self.progress.start()
        podman = Podman(self.runner, options.podman_executable)
        podman.check_version(os.path.join(options.state_dir, TOOLS_FILE))
        if self.warm_compose and not self.check_mode:
            self._warm_compose()
        plan, state = compute_plan(options, self.runner, podman, remember=not self.check_mode)
        self.plan = plan
        needed = vault_needed(plan, state, options.secrets, options.state_dir)
        if needed:
            # Phase one of a run with ansible-vault files: nothing was changed; the action plugin decrypts
            # these on the controller and runs the module again with the plaintexts (no_log).
            return RunResult(Verdict(False, [], None), vault_needed=needed)
        store = StateStore(options.state_dir)
        if not self.check_mode and options.notify is not None and options.notify.active:
            self.announcer = Announcer(options.notify, options.state_dir, self.runner, options.repo_dir)
            try:
                self.announcer.started(plan.commit, self.run_id, options.trigger)
            except Exception as exc:  # noqa: BLE001 - telling must never stop a deploy
                self.announcer.results.append(unexpected(exc))
        # Before anything is applied: a deploy replaces the snapshot the diff compares with.
        diff_text = plan_diff(plan, options.prune, options.state_dir, options.secrets)

        if self.check_mode:
            for item in plan.items.values():
                action = {DEPLOY: DEPLOYED, ORPHANED: PRUNED if options.prune else ORPHANED}.get(item.action, item.action)
                if item.action == UNCHANGED and self._image_updates_for(plan.specs[item.name]) and self._local_image_differs(plan, item, podman):
                    action, item.reason = DEPLOYED, "image"
                self._entry(item, action)
        else:
            # Prune first: a service that moved to another folder needs the ports its old project holds.
            self._prune(plan, state, store, podman)
            self._apply(plan, state, store, podman)
            store.save(state)

        report = build_report(
            self.run_id, options.trigger, plan.commit, self.started, self.check_mode, self.services, warnings=plan.warnings, fast_lane=options.fast_lane
        )
        self._announce(report)
        path = write_report(options.state_dir, report, options.keep_runs)
        return RunResult(
            verdict(self.services, path),
            report=report,
            report_path=path,
            plan={name: item.as_dict() for name, item in plan.items.items()},
            diff_text=diff_text,
            summary=self.summary(plan),
            warnings=plan.warnings + (self.announcer.warnings() if self.announcer else []),
        )

    def _warm_compose(self) -> None:
        """Start podman-compose's fork server in the background; a failure to start is the first deploy's to tell."""
        try:
            self.compose = PodmanCompose(self.runner, self.options.compose_executable)
        except PodopsError:
            return  # podman-compose is missing: a run that deploys says so, one that does not needs none
        compose = self.compose

        def start() -> None:
            with contextlib.suppress(Exception):  # the first call starts it again, and says why it cannot
                compose.fork_server()

        threading.Thread(target=start, name="podops-compose-warm", daemon=True).start()

    def _announce(self, report: dict[str, t.Any]) -> None:
        """Notify and post the commit status (within the notify timeout; never fails the run)."""
        notify = self.options.notify
        if self.check_mode or notify is None or not notify.active:
            return
        if self.announcer is None:  # the run failed before its plan
            self.announcer = Announcer(notify, self.options.state_dir, self.runner, self.options.repo_dir)
        try:
            report["notifications"] = self.announcer.finished(report)
        except Exception as exc:  # noqa: BLE001 - telling must never fail a deploy
            self.announcer.results.append(unexpected(exc))
            report["notifications"] = list(self.announcer.results)

    def _entry(self, item: PlanItem, action: str, error: str | None = None, duration: float = 0.0, failure_log: dict | None = None) -> None:
        self.services[item.name] = service_entry(
            action,
            item.reason,
            digest=item.digest,
            previous_digest=item.previous_digest,
            changed_files=item.changed_files,
            error=error if error is not None else item.error,
            duration_s=duration,
            failure_log=failure_log,
        )

    @staticmethod
    def _local_image_differs(plan: Plan, item: PlanItem, podman: Podman) -> bool:
        """Check mode pulls nothing: compare the running containers with the images present locally."""
        spec = plan.specs[item.name]
        if spec.project is None:
            return False
        refs = spec.project.service_images()
        local = podman.image_ids(sorted(set(refs.values())))
        running = {c.compose_service: c.image_id for c in plan.live.get(spec.live_project, [])}
        return any(svc in running and refs[svc] in local and local[refs[svc]] != running[svc] for svc in refs)

    def _image_updates_for(self, spec: ServiceSpec) -> bool:
        if self.options.redeploy:
            return True
        setting = spec.project.settings.image_updates if spec.project else None
        return self.options.image_updates if setting is None else setting

    def _apply(self, plan: Plan, state: dict[str, ServiceRecord], store: StateStore, podman: Podman) -> None:
        """Deploy what the plan says (and refresh images where asked), then record every other service."""
        options = self.options
        to_deploy = [plan.specs[item.name] for item in plan.by_action(DEPLOY)]
        to_refresh = [plan.specs[item.name] for item in plan.by_action(UNCHANGED) if self._image_updates_for(plan.specs[item.name])]
        if to_deploy or to_refresh:
            compose = self.compose or PodmanCompose(self.runner, options.compose_executable)
            compose.check_version(os.path.join(options.state_dir, TOOLS_FILE))
            deployer = Deployer(podman, compose, options.state_dir, options.project_prefix, plan.commit, options.repo_dir, options.secrets)
            deployer.progress = self.progress
            before = dict(state)  # what each service was when the run began (a rollback goes back to it)

            def deploy(spec: ServiceSpec) -> Outcome:
                return deployer.deploy(spec, before.get(spec.name), pull=bool(options.redeploy))

            def refresh(spec: ServiceSpec) -> Outcome | None:
                return deployer.update_images(spec, before.get(spec.name) or ServiceRecord(), plan.live.get(spec.live_project, []))

            apply_all(to_deploy, deploy, options.parallel, functools.partial(self._deployed, plan, state, store))
            apply_all(to_refresh, refresh, options.parallel, functools.partial(self._refreshed, plan, state, store))
        self._record_the_rest(plan, state)

    def _deployed(self, plan: Plan, state: dict[str, ServiceRecord], store: StateStore, spec: ServiceSpec, outcome: Outcome | None) -> None:
        outcome = outcome or Outcome(FAILED, "no outcome")  # deploy() always returns one
        if outcome.action == DEPLOYED:
            if outcome.project:
                spec.live_project = outcome.project  # blue-green: the slot now active
            state[spec.name] = _record_success(spec, plan.commit, outcome.images)
        else:
            state[spec.name] = _record_failure(state.get(spec.name), spec, outcome.error or "failed")
        if outcome.served is not None:
            self.serving[spec.name] = outcome.served
        self._entry(plan.items[spec.name], outcome.action, outcome.error, outcome.duration_s, outcome.failure_log)
        store.save(state)  # after every service: a killed run keeps what finished

    def _refreshed(self, plan: Plan, state: dict[str, ServiceRecord], store: StateStore, spec: ServiceSpec, outcome: Outcome | None) -> None:
        item = plan.items[spec.name]
        if outcome is None:
            return  # same images: nothing restarted, recorded as unchanged by _record_the_rest
        item.reason = "image"
        recorded = state.get(spec.name) or _record_success(spec, plan.commit)
        if outcome.action == DEPLOYED:
            state[spec.name] = recorded.image_refreshed(outcome.images)
        else:
            state[spec.name] = recorded.image_refresh_failed(outcome.images, outcome.error)
        self._entry(item, outcome.action, outcome.error, outcome.duration_s, outcome.failure_log)
        store.save(state)

    def _record_the_rest(self, plan: Plan, state: dict[str, ServiceRecord]) -> None:
        """Services nothing was done to: failed in the plan, or unchanged (adopted ones get a record and a snapshot)."""
        snapshots = SnapshotStore(self.options.state_dir)
        for item in plan.items.values():
            if item.name in self.services:
                continue
            if item.action == "failed":
                spec = plan.specs[item.name]
                state[item.name] = _record_failure(state.get(item.name), spec, item.error or "invalid")
                self._entry(item, FAILED)
            elif item.action == UNCHANGED:
                recorded = state.get(item.name)
                spec = plan.specs[item.name]
                if item.reason == "adopted" or recorded is None or not recorded.digest:
                    running = plan.live.get(spec.live_project, [])
                    state[item.name] = _record_success(spec, plan.commit, {c.compose_service: c.image_id for c in running if c.image_id})
                    snapshots.save(spec.name, self.options.repo_dir, spec.rel_dir, spec.files)
                elif recorded.status != "ok":
                    state[item.name] = recorded.healed()
                self._entry(item, UNCHANGED)

    def _prune(self, plan: Plan, state: dict[str, ServiceRecord], store: StateStore, podman: Podman) -> None:
        snapshots = SnapshotStore(self.options.state_dir)
        for item in plan.by_action(ORPHANED):
            if item.reason == "renamed":
                # Its compose project now belongs to the service in the new folder: forget the old name only.
                state.pop(item.name, None)
                snapshots.remove(item.name)
                self._entry(item, ORPHANED)
                continue
            if not self.options.prune:
                self._entry(item, ORPHANED)
                continue
            try:
                recorded = state.get(item.name) or ServiceRecord()
                if recorded.strategy == "blue-green":
                    remove_slots(podman, self.options.state_dir, item.name, str(recorded.base_project))
                podman.remove_project(item.project_name)
            except PodopsError as exc:
                self._entry(item, FAILED, str(exc))
                continue
            state.pop(item.name, None)
            ServiceFiles(self.options.state_dir, item.name).forget()
            self._entry(item, PRUNED)
            store.save(state)

    def summary(self, plan: Plan) -> list[str]:
        """One line per service: ``web: deployed (changed, 2.1s) http://localhost:8080/``; in check mode
        ``would deploy``; after a rollback the URLs of the version serving again."""
        lines = []
        for name, entry in sorted(self.services.items()):
            action, reason = entry["action"], entry["reason"]
            if self.check_mode:
                action = {DEPLOYED: "would deploy", PRUNED: "would prune"}.get(action, action)
            details = [] if reason in (entry["action"], "unchanged") else [reason]
            if entry.get("duration_s"):
                details.append(f"{entry['duration_s']:.1f}s")
            text = f"{name}: {action}" + (f" ({', '.join(details)})" if details else "")
            served = self.serving.get(name) or active_slot_project(plan.specs.get(name))
            links = project_urls(served) if served is not None else urls(plan.specs.get(name))
            if links and entry["action"] in (DEPLOYED, UNCHANGED, ROLLED_BACK):
                text += " " + " ".join(links)
            if entry["action"] == ORPHANED and reason != "renamed":
                text += " - still running: set podops_prune=true to remove its containers (volumes are kept)"
            if entry.get("error"):
                text += f" - {entry['error']}"
            lines.append(text)
            lines += failure_lines(entry.get("failure_log"))
        return lines


def active_slot_project(spec: ServiceSpec | None) -> ComposeProject | None:
    """A blue-green service's project as its active slot runs it (``${PODOPS_SLOT_PORT}`` filled in), or None."""
    slot = slot_of(spec.live_project) if spec is not None and spec.project is not None and spec.blue_green else None
    if slot is None:
        return None
    return dataclasses.replace(spec.project, slot_env=spec.project.settings.slot_env(slot))


def failure_lines(failure_log: t.Mapping[str, t.Any] | None) -> list[str]:
    """The summary's lines under a failed service: the failing container's last log lines."""
    if not failure_log:
        return []
    lines = list(failure_log.get("lines") or [])
    container = failure_log.get("container")
    head = f"  last {len(lines)} log line(s) of {container} (before the rollback):" if lines else f"  {container} logged nothing"
    return [head] + [f"  | {line}" for line in lines]
