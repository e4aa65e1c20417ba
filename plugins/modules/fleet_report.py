#!/usr/bin/python
# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the fleet summary (host x service) of a laptop run on the controller
version_added: 0.1.0
description:
  - Builds one table, host x service -> action (V(deployed), V(unchanged), V(rolled_back), V(failed), V(skipped), ...),
    from the run reports the hosts of the play returned (the registered result of M(podops.gitops.compose_deploy),
    C(podops_result)), and writes it on the controller as C(<report_dir>/<fleet run id>.json) and C(.md).
  - A host the rollout has not reached (a later C(serial) batch, or one left out because an earlier batch failed)
    is V(skipped), with the services its C(podops_services) selects; a host that failed before podops ran on it
    (unreachable, a failed sync) is V(failed) with the reason from C(podops_fleet_error).
  - Run it once per batch (C(run_once)) after the reconcile. Hostvars persist across batches, so every call sees
    the earlier batches' hosts, and the files of one run are rewritten, never multiplied. The fleet run id is kept
    in the fact C(podops_fleet_run_id).
  - This is an action plugin that runs entirely on the controller; nothing is sent to the host.
    The playbook C(podops.gitops.reconcile) calls it (see C(podops_fleet_report_dir)).
author:
  - podops.gitops contributors (@podops)
options:
  report_dir:
    description:
      - Folder on the controller for the summaries; a relative path is relative to the folder C(ansible-playbook)
        was started in. Created when missing.
    type: str
    default: ./podops-reports
  max_fail_percentage:
    description:
      - The play's C(max_fail_percentage), to tell whether this batch ends the rollout (RV(final)).
    type: float
    default: 0
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The summary of a check-mode run is written too (C(check_mode) is V(true) in it), like the hosts' own
        C(last-check.json); it changes nothing on any host.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details:
      - It never reports a change (writing a report changes no host).
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
seealso:
  - module: podops.gitops.compose_deploy
"""

EXAMPLES = r"""
- name: Write the fleet summary once per batch
  podops.gitops.fleet_report:
    report_dir: ./podops-reports
  run_once: true
  register: podops_fleet

- name: Print it
  ansible.builtin.debug:
    msg: "{{ podops_fleet.lines }}"
  run_once: true
"""

RETURN = r"""
summary:
  description: The fleet summary, as written to RV(json_path).
  returned: success
  type: dict
  sample:
    run_id: fleet-20260101T120000Z-1a2b
    result: failed
    hosts:
      web1: {status: changed, commit: 4b825dc6, services: {web: {action: deployed, reason: changed}}}
      web2: {status: failed, services: {web: {action: failed, error: "port 8080 is already in use"}}}
      web3: {status: skipped, services: {web: {action: skipped, reason: not reached}}}
    services: [web]
    totals: {deployed: 1, failed: 1, skipped: 1}
    failed: {web2: [web]}
    skipped_hosts: [web3]
lines:
  description: The summary as text lines (headline, aligned table, failures).
  returned: success
  type: list
  elements: str
json_path:
  description: The JSON file written on the controller.
  returned: success
  type: str
  sample: /home/me/fleet/podops-reports/fleet-20260101T120000Z-1a2b.json
markdown_path:
  description: The markdown file written on the controller.
  returned: success
  type: str
  sample: /home/me/fleet/podops-reports/fleet-20260101T120000Z-1a2b.md
final:
  description: Whether this is the last summary of the run (no host is left to reach, or this batch stops the rollout).
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={"report_dir": {"type": "str", "default": "./podops-reports"}, "max_fail_percentage": {"type": "float", "default": 0}},
        supports_check_mode=True,
    )
    module.fail_json(msg="podops.gitops.fleet_report runs on the controller through its action plugin; it has nothing to do on a host")


if __name__ == "__main__":
    main()
