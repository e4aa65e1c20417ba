# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the podops modules share: argument spec, the runner over run_command, option mapping.

PRIVATE to the podops.gitops collection: no API guarantee for other code.
"""

from __future__ import annotations

import os
import typing as t

from ._reconcile import Options

COMMON_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "repo_dir": {"type": "path", "required": True},
    "services_dir": {"type": "str", "default": "services"},
    "state_dir": {"type": "path"},
    "services": {"type": "list", "elements": "str", "default": []},
    "project_prefix": {"type": "str", "default": ""},
    "podman_executable": {"type": "str"},
}


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
        parallel=int(params.get("parallel") or 4),
        lock_timeout=float(params.get("lock_timeout") if params.get("lock_timeout") is not None else 300),
        keep_runs=int(params.get("keep_runs") or 100),
        podman_executable=params.get("podman_executable"),
        compose_executable=params.get("compose_executable"),
    )
