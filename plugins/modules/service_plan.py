#!/usr/bin/python
# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_plan
short_description: Show what a reconcile of an env repo would do, without doing it
version_added: 0.1.0
description:
  - Computes the same plan as M(podops.gitops.compose_deploy) - for every service folder of the env repo whether it
    would be deployed, left unchanged, or is orphaned, with the reason and the changed files - and changes nothing.
  - One pass over all services (one C(git ls-files), one C(podman ps)); cheap enough to run on every webhook.
  - C(changed) is V(true) when a reconcile with the same O(prune) would change something (a service to deploy,
    or with O(prune=true) an orphan to remove), as M(podops.gitops.compose_deploy) in check mode says, so
    C(--check) runs show it. Image updates of unchanged services are not planned here.
author:
  - podops.gitops contributors (@podops)
extends_documentation_fragment:
  - podops.gitops.common
options:
  services:
    description:
      - Restrict the plan to these services (names or shell globs). Empty means all.
    type: list
    elements: str
    default: []
  prune:
    description:
      - Whether the reconcile this plan is for removes the services that left the repo (as O(podops.gitops.compose_deploy#module:prune)).
        With V(false) an orphan is reported but does not make the plan C(changed).
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module never changes anything; it behaves the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff lists each service with its planned action, reason and changed files.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
seealso:
  - module: podops.gitops.compose_deploy
"""

EXAMPLES = r"""
- name: What would a reconcile do?
  podops.gitops.service_plan:
    repo_dir: /srv/env-repo
  register: podops_plan

- name: List the services that would be deployed
  ansible.builtin.debug:
    msg: "{{ podops_plan.plan | dict2items | selectattr('value.action', 'eq', 'deploy') | map(attribute='key') | list }}"
"""

RETURN = r"""
plan:
  description: Per service, the planned action (V(deploy), V(unchanged), V(orphaned), V(failed)) and why.
  returned: always
  type: dict
  sample:
    web:
      action: deploy
      reason: changed
      project: web
      digest: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      previous_digest: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
      changed_files: [compose.yaml]
      error: null
commit:
  description: HEAD of the env repo checkout, or null when it is not a git checkout.
  returned: always
  type: str
  sample: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..module_utils._common import PodopsError
from ..module_utils._compose import HAS_YAML, YAML_IMPORT_ERROR
from ..module_utils._module import COMMON_ARGSPEC, make_runner, module_options
from ..module_utils._reconcile import compute_plan, plan_diff, vault_needed


def main() -> None:
    argument_spec = dict(COMMON_ARGSPEC, services={"type": "list", "elements": "str", "default": []}, prune={"type": "bool", "default": False})
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    options = module_options(module)
    try:
        options.validate()
        plan, _state = compute_plan(options, make_runner(module))
    except PodopsError as exc:
        module.fail_json(msg=str(exc))
    needed = vault_needed(plan, _state, options.secrets, options.state_dir)
    if needed:
        module.exit_json(changed=False, vault_needed=needed)
    for warning in plan.warnings:
        module.warn(warning)
    result = {
        "changed": plan.would_change(options.prune),
        "plan": {name: item.as_dict() for name, item in plan.items.items()},
        "commit": plan.commit,
    }
    if module._diff:
        result["diff"] = {"prepared": plan_diff(plan, prune=options.prune)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
