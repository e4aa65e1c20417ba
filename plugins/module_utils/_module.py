# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the podops modules share: argument spec, the runner over run_command, option mapping.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import os
import typing as t

from ._common import PodopsError
from ._digest import Secrets
from ._notify import NotifySettings
from ._reconcile import Options

COMMON_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "repo_dir": {"type": "path", "required": True},
    "services_dir": {"type": "str", "default": "services"},
    "state_dir": {"type": "path"},
    "project_prefix": {"type": "str", "default": ""},
    "podman_executable": {"type": "str"},
    # Set by the action plugin after it decrypted the ansible-vault files the module asked for.
    "vault_plaintexts": {"type": "dict", "no_log": True},
    "vault_errors": {"type": "dict"},
    "vault_provided": {"type": "bool", "default": False},
}

# The options of the modules that take the host lock and write a run report (doc fragment common.run).
RUN_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "trigger": {"type": "str", "default": "cli", "choices": ["cli", "timer", "webhook", "laptop"]},
    "run_id": {"type": "str"},
    "parallel": {"type": "int", "default": 4},
    "lock_timeout": {"type": "float", "default": 300},
    "keep_runs": {"type": "int", "default": 100},
    "fail_on_service_error": {"type": "bool", "default": True},
    "compose_executable": {"type": "str"},
    # Notifications and commit status (see _notify, _deliver): URLs and token are secrets.
    "notify_urls": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "notify_on": {
        "type": "list",
        "elements": "str",
        "default": ["failed", "rolled_back", "recovered"],
        "choices": ["failed", "rolled_back", "recovered", "deployed", "pruned", "orphaned"],
    },
    "notify_timeout": {"type": "float", "default": 5},
    "commit_status": {
        "type": "dict",
        "options": {
            "provider": {"type": "str", "required": True, "choices": ["github", "gitea", "forgejo", "gitlab"]},
            "repository": {"type": "str", "required": True},
            "api_url": {"type": "str"},
            "token": {"type": "str", "no_log": True},
            "token_file": {"type": "path"},
            "context": {"type": "str"},
        },
    },
    "status_url": {"type": "str"},
}


# podops.gitops.ab_switch
SWITCH_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "backend": {"type": "str", "default": "compose", "choices": ["compose", "systemd"]},
    "version": {"type": "str"},
    "project_src": {"type": "path"},
    "project_name": {"type": "str"},
    "unit": {"type": "str"},
    "ports": {"type": "dict"},
    "health_url": {"type": "str"},
    "health_timeout": {"type": "float", "default": 60},
    "health_samples": {"type": "int", "default": 2},
    "health_interval": {"type": "float", "default": 0.5},
    "upstream_file": {"type": "path"},
    "upstream_template": {"type": "str", "default": "server 127.0.0.1:{port};\n"},
    "reload_command": {"type": "list", "elements": "str", "default": []},
    "drain": {"type": "float", "default": 2},
    "stop_timeout": {"type": "int", "default": 10},
    "state_dir": {"type": "path"},
    "lock_timeout": {"type": "float", "default": 300},
    "podman_executable": {"type": "str"},
    "compose_executable": {"type": "str"},
}


def switch_and_exit(module: t.Any) -> None:
    """podops.gitops.ab_switch: build the switch and its backend from the parameters, run it, exit."""
    from ._state import HostLock
    from ._switch import Marker, Switch, SwitchConfig

    params = module.params
    state_dir = params.get("state_dir") or default_state_dir()
    runner = make_runner(module)
    try:
        ports = {str(slot): port for slot, port in (params.get("ports") or {}).items()}
        try:
            ports = {slot: int(port) for slot, port in ports.items()}
        except (TypeError, ValueError):
            raise PodopsError(f"ports must map each slot to a port number, for example {{a: 8081, b: 8082}}, not {params['ports']!r}") from None
        config = SwitchConfig(
            name=params["name"],
            ports=ports,
            health_url=params.get("health_url"),
            health_timeout=params["health_timeout"],
            health_samples=params["health_samples"],
            health_interval=params["health_interval"],
            upstream_file=params.get("upstream_file"),
            upstream_template=params["upstream_template"],
            reload_command=list(params.get("reload_command") or []),
            drain=params["drain"],
        )
        config.validate()
        if params["backend"] == "systemd":
            from ._switch import SystemdBackend

            backend: t.Any = SystemdBackend(runner, params["unit"], timeout=params["health_timeout"])
            version = params["version"]
        else:
            backend, version = _compose_slots(module, params, state_dir, runner, config)
        marker = Marker(state_dir, config.name)
        holder = f"pid {os.getpid()}, ab_switch {config.name}"
        lock = HostLock(state_dir, params["lock_timeout"], holder, path=marker.path[: -len(".json")] + ".lock", what=f"switch of {config.name}")
        switch = Switch(config, backend, state_dir, runner=runner)
        before = marker.load()
        if module.check_mode:
            result = switch.run(version, check_mode=True)
        else:
            with lock:
                result = switch.run(version)
    except PodopsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    output = dict(result.as_dict(), marker=marker.path)
    if module._diff:
        after_version = result.version if result.changed or before.get("active") else None
        output["diff"] = {
            "before": {"active": before.get("active"), "version": (before.get("versions") or {}).get(before.get("active") or "")},
            "after": {"active": result.active, "version": after_version},
        }
    module.exit_json(**output)


def _compose_slots(module: t.Any, params: t.Mapping[str, t.Any], state_dir: str, runner: t.Any, config: t.Any) -> tuple[t.Any, str]:
    """The compose backend of a standalone switch: the project in ``project_src`` and its version."""
    from ._apply import Deployer, VaultSource
    from ._common import LABEL_DIGEST, LABEL_SWITCH, PodopsError
    from ._compose import Settings, load_project
    from ._digest import digest_of, file_map, walk_files
    from ._podman import Podman, PodmanCompose
    from ._slots import ComposeSlots, slot_version
    from ._state import TOOLS_FILE

    src = params["project_src"]
    if not os.path.isdir(src):
        raise PodopsError(f"project_src {src} is not a folder; point it at the folder with the compose file")
    project = load_project(src)
    # The module's options are the switch; the file's own x-podops settings stay as they are, slots taken from here.
    settings = project.settings
    project.settings = Settings(
        strategy="blue-green",
        health_timeout=settings.health_timeout,
        health_samples=settings.health_samples,
        health_interval=settings.health_interval,
        oneshot=settings.oneshot,
        timeouts=settings.timeouts,
        profiles=settings.profiles,
        slots={"ports": config.ports, "stop_timeout": params["stop_timeout"]},
    )
    podman = Podman(runner, params.get("podman_executable"))
    podman.check_version(os.path.join(state_dir, TOOLS_FILE))
    compose = PodmanCompose(runner, params.get("compose_executable"))
    compose.check_version(os.path.join(state_dir, TOOLS_FILE))
    deployer = Deployer(podman, compose, state_dir, "", None, src)
    if module.check_mode:  # nothing is pulled: the version from the images present
        refs = project.service_images()
        local = podman.image_ids(sorted(set(refs.values())))
        images = {svc: local[ref] for svc, ref in refs.items() if ref in local}
    else:
        images = deployer.images.ensure(project)
    files = walk_files(src)
    version = params.get("version") or slot_version(digest_of(file_map(src, files)), images)
    labels = {LABEL_SWITCH: config.name, LABEL_DIGEST: version}
    name = params.get("project_name") or config.name
    source = VaultSource(os.path.dirname(src.rstrip("/")), os.path.basename(src.rstrip("/")), files, src, vault=False)
    return ComposeSlots(deployer, f"ab-{config.name}", name, project, labels, images, source), version


def run_and_exit(module: t.Any, options: Options) -> None:
    """Run a reconcile (or a redeploy) for a module and exit with its result; service failures fail the task
    unless O(fail_on_service_error=false)."""
    from ._reconcile import Reconciler

    try:
        result = Reconciler(options, make_runner(module), module.check_mode).run()
    except PodopsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if result.vault_needed is not None:
        module.exit_json(changed=False, vault_needed=result.vault_needed)
    if not module.check_mode:
        from ._deliver import save_settings

        try:
            save_settings(options.state_dir, options.notify)  # the fast lane tells the same people (see _deliver)
        except OSError as exc:
            module.warn(f"could not record the notification settings for podops-pull's fast lane: {exc.strerror}")
    if not module.check_mode and options.redeploy is None:
        # What podops-pull's fast lane replays after this playbook run succeeded (see _lane).
        from ._lane import record_engine_call

        try:
            record_engine_call(options, result.report["run_id"], os.environ)
        except OSError as exc:
            module.warn(f"could not record the engine call for podops-pull's fast lane: {exc}")
    for warning in result.warnings:
        module.warn(warning)
    out = result.module_result()
    if module._diff:
        out["diff"] = {"prepared": result.diff_text}
    if result.failed_services and module.params["fail_on_service_error"]:
        module.fail_json(msg=result.message, **out)
    module.exit_json(**out)


def default_state_dir() -> str:
    """``/var/lib/podops`` for root, ``$XDG_STATE_HOME/podops`` (``~/.local/state/podops``) otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/podops"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "podops")


def make_runner(module: t.Any) -> t.Callable[..., tuple[int, str, str]]:
    """The module's runner: an argv list, no shell, no ``~``/``$VAR`` expansion, the environment
    ``module.run_command`` gives a command (C locale), and a time limit. ``run_command`` itself cannot end a
    command that hangs (nor the processes it started), so the command runs through ``_process.run_process``."""
    from ._common import FALLBACK_TIMEOUT
    from ._forkserver import command_environment
    from ._process import run_process

    def run(args: list[str], cwd: str | None = None, env: t.Mapping[str, str] | None = None, timeout: float | None = None) -> tuple[int, str, str]:
        return run_process(args, cwd=cwd, env=command_environment(env), timeout=timeout or FALLBACK_TIMEOUT)

    # What a command gets, for the podman-compose fork server to reproduce.
    run.command_environment = command_environment  # type: ignore[attr-defined]
    return run


def module_options(module: t.Any) -> Options:
    """The engine's options from a module's parameters; a value the engine refuses fails the task, naming it."""
    try:
        return options_from_params(module.params)
    except PodopsError as exc:
        module.fail_json(msg=str(exc))
        raise  # pragma: no cover - fail_json exits


def options_from_params(params: t.Mapping[str, t.Any]) -> Options:
    def given(key: str, default: t.Any) -> t.Any:
        # 0 is a value (which validate() refuses where it makes no sense), not "use the default".
        return params[key] if params.get(key) is not None else default

    return Options(
        repo_dir=params["repo_dir"],
        state_dir=params.get("state_dir") or default_state_dir(),
        services_dir=params["services_dir"],
        services=list(params.get("services") or []),
        project_prefix=params.get("project_prefix") or "",
        prune=bool(params.get("prune", False)),
        trigger=params.get("trigger") or "cli",
        run_id=params.get("run_id") or None,
        parallel=int(given("parallel", 4)),
        lock_timeout=float(given("lock_timeout", 300)),
        keep_runs=int(given("keep_runs", 100)),
        podman_executable=params.get("podman_executable"),
        compose_executable=params.get("compose_executable"),
        image_updates=bool(params.get("image_updates", False)),
        redeploy=params.get("service"),
        secrets=Secrets(params.get("vault_plaintexts"), params.get("vault_errors"), bool(params.get("vault_provided"))),
        notify=NotifySettings.from_params(
            params.get("notify_urls"), params.get("notify_on"), params.get("commit_status"), params.get("status_url"), params.get("notify_timeout")
        )
        if "notify_urls" in params
        else None,
    )
