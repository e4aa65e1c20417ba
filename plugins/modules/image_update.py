#!/usr/bin/python
# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_update
short_description: Redeploy one service of an env repo with fresh images
version_added: 0.1.0
description:
  - Pulls the images of one service first (every image not pinned by digest), then recreates only the containers
    whose image changed, waits until they are running and healthy, and records the new image IDs.
  - The same image means nothing is restarted and nothing is reported changed.
  - A new image that does not get healthy is rolled back to the previous one, which podops keeps tagged as
    C(localhost/podops-previous/<project>_<service>:latest) so an image prune cannot take it; the task fails with
    the reason.
  - When the service's files changed since its last deploy (or it drifted), the whole service is deployed as a
    reconcile would, with freshly pulled images.
  - The service name is checked before anything runs; an unknown or malformed name (C(../x), C(a/b), empty) is
    refused with the list of valid services.
  - The same as M(podops.gitops.compose_deploy) with O(podops.gitops.compose_deploy#module:service), which
    C(ansible-playbook podops.gitops.redeploy -e podops_service=NAME) and C(podops-pull -e podops_service=NAME) run
    (with every other option of the reconcile, such as C(services)); use this module in a task of your own.
  - Notifications (O(notify_urls)) and the commit status (O(commit_status)) work as for
    M(podops.gitops.compose_deploy).
author:
  - podops.gitops contributors (@podops)
extends_documentation_fragment:
  - podops.gitops.common
  - podops.gitops.common.run
options:
  service:
    description:
      - The service folder to redeploy.
    type: str
    required: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: partial
    details:
      - In check mode nothing is pulled; the result says whether the local images differ from the running ones.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
seealso:
  - module: podops.gitops.compose_deploy
"""

EXAMPLES = r"""
- name: A new image of the app was published
  podops.gitops.image_update:
    repo_dir: /srv/env-repo
    service: app
    trigger: webhook
"""

RETURN = r"""
report:
  description: The run report, as written to C(last-run.json); the service's action is V(deployed) with reason V(image).
  returned: success or service failure
  type: dict
  sample: {result: changed, services: {app: {action: deployed, reason: image}}}
report_path:
  description: Path of this run's report.
  returned: success or service failure
  type: str
  sample: /var/lib/podops/runs/20261126T123456Z-3f9a1c.json
summary:
  description: One line for the service with its action, reason and published ports (see M(podops.gitops.compose_deploy)).
  returned: success or service failure
  type: list
  elements: str
  sample: ["app: deployed (image, 3.0s) http://localhost:8080/"]
failed_services:
  description: The service, when it failed or was rolled back.
  returned: success or service failure
  type: list
  elements: str
  sample: [app]
plan:
  description: What the plan decided for the service before images were pulled.
  returned: success or service failure
  type: dict
  sample: {app: {action: unchanged, reason: unchanged}}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..module_utils._compose import HAS_YAML, YAML_IMPORT_ERROR
from ..module_utils._module import COMMON_ARGSPEC, RUN_ARGSPEC, module_options, run_and_exit


def main() -> None:
    argument_spec = dict(COMMON_ARGSPEC, **RUN_ARGSPEC)
    argument_spec.update(service={"type": "str", "required": True})
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    run_and_exit(module, module_options(module))


if __name__ == "__main__":
    main()
