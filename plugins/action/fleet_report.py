# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for podops.gitops.fleet_report: the fleet summary, built and written on the controller.

It runs in the controller's process (nothing goes to a host): it reads every host's run report from the play's
hostvars (they persist across ``serial`` batches, so a later batch keeps the earlier ones), hands them to the pure
core in module_utils/_fleet.py and writes ``<report_dir>/<fleet run id>.json`` and ``.md``, rewritten after every
batch so that a rollout that stops (or is interrupted) still leaves the picture of what it did.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from collections.abc import Mapping

from ansible.plugins.action import ActionBase

# The fleet core (module_utils/_fleet.py, and through its host selection the whole planner) is imported in run(), not
# here: the strategy loads this plugin in the controller's main process for every play that has the task, also where
# the task is skipped (every run on the local connection), and importing the planner there cost about 0.1 s a run.

ARGUMENT_SPEC = {
    "report_dir": {"type": "str", "default": "./podops-reports"},
    "max_fail_percentage": {"type": "float", "default": 0.0},
}
FACT = "podops_fleet_run_id"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def _run_id(self, hostvars, hosts) -> str:
        """The fleet run's id: the one an earlier batch gave its hosts, or a new one."""
        for name in hosts:
            facts = hostvars[name].get("ansible_facts") or {}
            if facts.get(FACT):
                return str(facts[FACT])
        return _now().strftime("fleet-%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)

    def run(self, tmp=None, task_vars=None):
        from ansible_collections.podops.gitops.plugins.module_utils._fleet import HostInput, build_summary, render_lines, render_markdown, rollout_stops
        from ansible_collections.podops.gitops.plugins.module_utils._state import atomic_write

        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        task_vars = task_vars or {}
        hostvars = task_vars["hostvars"]
        hosts = list(task_vars.get("ansible_play_hosts_all") or [])
        active = set(task_vars.get("ansible_play_hosts") or [])
        batch = list(task_vars.get("ansible_play_batch") or [])
        inputs = []
        for name in hosts:
            variables = hostvars[name]
            outcome = variables.get("podops_result") or {}
            report = outcome.get("report") if isinstance(outcome, Mapping) else None
            error = variables.get("podops_fleet_error") or ""
            if not report and isinstance(outcome, Mapping) and outcome.get("failed"):
                error = error or outcome.get("msg") or "the reconcile failed"
            inputs.append(
                HostInput(
                    name=name,
                    report=dict(report) if report else None,
                    error=str(error),
                    reached=name in batch or name not in active or bool(outcome),
                    selection=[str(item) for item in (variables.get("podops_services") or [])],
                )
            )
        run_id = self._run_id(hostvars, hosts)
        # The task itself runs with check_mode off (it writes on the controller only): the run's mode is the hosts'.
        check_mode = bool(task_vars.get("ansible_check_mode")) or any(host.report.get("check_mode") for host in inputs if host.report)
        summary = build_summary(inputs, run_id=run_id, generated=_now().isoformat(timespec="seconds"), check_mode=check_mode)
        report_dir = os.path.abspath(os.path.expanduser(args["report_dir"]))
        base = os.path.join(report_dir, run_id)
        try:
            os.makedirs(report_dir, exist_ok=True)
            atomic_write(base + ".json", _json(summary), mode=0o644)
            atomic_write(base + ".md", render_markdown(summary), mode=0o644)
        except OSError as exc:
            msg = f"cannot write the fleet summary to {report_dir}: {exc.strerror}; set podops_fleet_report_dir to a writable folder (empty: none)"
            result.update(failed=True, msg=msg)
            return result
        pending = [name for name in summary["skipped_hosts"] if name not in batch]
        result.update(
            changed=False,
            summary=summary,
            lines=render_lines(summary),
            json_path=base + ".json",
            markdown_path=base + ".md",
            final=not pending or rollout_stops(summary, batch, args["max_fail_percentage"]),
            ansible_facts={FACT: run_id},
        )
        return result


def _json(data) -> str:
    return json.dumps(data, indent=2) + "\n"
