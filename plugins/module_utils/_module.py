# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the podops modules share: argument spec, the runner over run_command, option mapping.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import os
import typing as t

from ._digest import Secrets
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
}


def run_and_exit(module: t.Any, options: Options) -> None:
    """Run a reconcile (or a redeploy) for a module and exit with its result; service failures fail the task
    unless O(fail_on_service_error=false)."""
    from ._common import PodopsError
    from ._reconcile import Reconciler

    try:
        result = Reconciler(options, make_runner(module), module.check_mode).run()
    except PodopsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if "vault_needed" in result:
        module.exit_json(**result)
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff_text = result.pop("diff_text")
    if module._diff:
        result["diff"] = {"prepared": diff_text}
    failed = result["failed_services"]
    if failed and module.params["fail_on_service_error"]:
        module.fail_json(msg=f"service(s) failed: {', '.join(failed)}; see the report {result['report_path']}", **result)
    module.exit_json(**result)


def default_state_dir() -> str:
    """``/var/lib/podops`` for root, ``$XDG_STATE_HOME/podops`` (``~/.local/state/podops``) otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/podops"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "podops")


def make_runner(module: t.Any) -> t.Callable[..., tuple[int, str, str]]:
    """AnsibleModule.run_command with an argv list, no shell, no ``~``/``$VAR`` expansion, C locale."""

    def run(args: list[str], cwd: str | None = None) -> tuple[int, str, str]:
        return module.run_command(
            args,
            cwd=cwd,
            expand_user_and_vars=False,
            environ_update={"LC_ALL": "C", "LANG": "C"},
        )

    return run


def options_from_params(params: t.Mapping[str, t.Any]) -> Options:
    return Options(
        repo_dir=params["repo_dir"],
        state_dir=params.get("state_dir") or default_state_dir(),
        services_dir=params["services_dir"],
        services=list(params.get("services") or []),
        project_prefix=params.get("project_prefix") or "",
        prune=bool(params.get("prune", False)),
        trigger=params.get("trigger") or "cli",
        run_id=params.get("run_id") or None,
        parallel=int(params.get("parallel") or 4),
        lock_timeout=float(params.get("lock_timeout") if params.get("lock_timeout") is not None else 300),
        keep_runs=int(params.get("keep_runs") or 100),
        podman_executable=params.get("podman_executable"),
        compose_executable=params.get("compose_executable"),
        image_updates=bool(params.get("image_updates", False)),
        redeploy=params.get("service"),
        secrets=Secrets(params.get("vault_plaintexts"), params.get("vault_errors"), bool(params.get("vault_provided"))),
    )
