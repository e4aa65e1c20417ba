#!/usr/bin/python
# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ab_switch
short_description: Blue-green switch between two slots of a compose project or a systemd template unit
version_added: 0.2.0
description:
  - Runs a new version beside the old one and moves traffic to it only once it is healthy. The two slots are
    C(a) and C(b); a marker file C(<state_dir>/ab/<name>.json) names the active one.
  - "A switch: start the standby slot with the new version on its own port; wait until it is healthy (the compose
    health gate of podops, or systemd's C(active) for units, then O(health_url) if given); only then flip the marker
    (one atomic rename), write O(upstream_file) and run O(reload_command); wait O(drain) seconds; stop the old slot."
  - A standby that does not get healthy is stopped; the old slot stays active and the task fails with the reason.
  - When the active slot already runs O(version), nothing is started. A leftover of an interrupted switch (the old
    slot still running, an upstream file that does not name the active slot) is cleaned up and reported as changed.
  - A run killed at any step leaves a marker naming one active slot (never two, never none once one was);
    running the task again finishes or redoes the switch.
  - The B(compose) backend runs slot C(X) as the compose project C(<project_name>-X), started from O(project_src) with
    C(PODOPS_SLOT=X) and C(PODOPS_SLOT_PORT=<port of X>) in the environment, so the compose file can publish
    C(127.0.0.1:${PODOPS_SLOT_PORT}:8080). Its containers carry the labels C(io.podops.switch) and C(io.podops.slot).
    Env repo services opt in with C(strategy=blue-green) under C(x-podops) instead; the reconcile then switches for them.
  - The B(systemd) backend runs slot C(X) as the instance C(<unit>@X.service) of the template O(unit). The new version must
    already be installed where the instance reads it; the switch restarts the standby instance, enables the active
    one and disables the other. The old instance is stopped without waiting (C(systemctl stop --no-block)), because it may
    be the process that runs this very task (the podops webhook shim updating itself), and it drains on SIGTERM.
author:
  - podops.gitops contributors (@podops)
options:
  name:
    description:
      - Name of the switch; names the marker C(<state_dir>/ab/<name>.json). Letters, digits, C(.), C(_), C(-).
    type: str
    required: true
  backend:
    description:
      - Where the slots run.
    type: str
    choices: [compose, systemd]
    default: compose
  version:
    description:
      - What the new version is. When the active slot already runs it, nothing is started.
      - Default for the compose backend is a digest of the files of O(project_src) and the image IDs of its services.
      - Required for the systemd backend (for example the checksum of the installed code).
    type: str
  project_src:
    description:
      - Folder with the compose file (compose backend).
    type: path
  project_name:
    description:
      - Base name of the two compose projects (compose backend). Default is O(name).
    type: str
  unit:
    description:
      - Systemd template unit (systemd backend), for example C(podops-webhook@.service).
    type: str
  ports:
    description:
      - Port of each slot, a mapping with the keys C(a) and C(b), for example C(a=8081) and C(b=8082). Used for C({port}) in O(health_url) and
        O(upstream_template), and given to compose files as C(PODOPS_SLOT_PORT).
    type: dict
  health_url:
    description:
      - URL that must answer 2xx or 3xx for O(health_samples) consecutive tries before the standby becomes
        active; C({port}) and C({slot}) are filled in. Example C(http://127.0.0.1:{port}/ready).
    type: str
  health_timeout:
    description:
      - Seconds the standby has to get healthy.
    type: float
    default: 60
  health_samples:
    description:
      - Consecutive good samples needed.
    type: int
    default: 2
  health_interval:
    description:
      - Seconds between samples.
    type: float
    default: 0.5
  upstream_file:
    description:
      - File rendered from O(upstream_template) for the active slot after the flip, for a reverse proxy to include.
    type: path
  upstream_template:
    description:
      - Content of O(upstream_file); C({port}) and C({slot}) are filled in (double other braces).
    type: str
    default: "server 127.0.0.1:{port};\n"
  reload_command:
    description:
      - Command (argument list, no shell) run after O(upstream_file) changed, for example C([nginx, -s, reload]).
        When it fails, the old upstream file is put back and the old slot stays active.
    type: list
    elements: str
    default: []
  drain:
    description:
      - Seconds between the flip and stopping the old slot, for requests in flight to finish.
    type: float
    default: 2
  stop_timeout:
    description:
      - Seconds podman waits for a container of the old slot to stop before killing it (compose backend).
    type: int
    default: 10
  state_dir:
    description:
      - podops state folder holding the marker. Default V(/var/lib/podops) as root, C(~/.local/state/podops) otherwise.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another switch of the same name to finish.
    type: float
    default: 300
  podman_executable:
    description:
      - podman to use (compose backend). Default is podman from E(PATH).
    type: str
  compose_executable:
    description:
      - podman-compose to use (compose backend). Default is the one next to the Python running the module, then E(PATH).
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Says which slot would become active and the steps, and starts nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The active slot and version, before and after.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
requirements:
  - podman >= 4.0 and podman-compose >= 1.1.0 (compose backend), systemd (systemd backend)
  - PyYAML
seealso:
  - module: podops.gitops.compose_deploy
"""

EXAMPLES = r"""
- name: Blue-green deploy of a compose project behind nginx
  podops.gitops.ab_switch:
    name: shop
    project_src: /srv/shop
    ports: {a: 8081, b: 8082}
    health_url: "http://127.0.0.1:{port}/healthz"
    upstream_file: /etc/nginx/podops/shop.upstream
    reload_command: [nginx, -s, reload]

- name: The webhook shim updates itself (systemd template unit podops-webhook@.service)
  podops.gitops.ab_switch:
    name: webhook
    backend: systemd
    unit: podops-webhook@.service
    version: "{{ podops_webhook_release }}"
    ports: {a: 9101, b: 9102}
    health_url: "http://127.0.0.1:{port}/ready"
"""

RETURN = r"""
active:
  description: The active slot after the task (in check mode, the slot that would be active).
  returned: always
  type: str
  sample: b
previous:
  description: The slot that was active before the switch, if any.
  returned: always
  type: str
  sample: a
outcome:
  description: V(started) (first slot), V(switched), V(unchanged) or V(repaired) (cleaned up after an interrupted switch).
  returned: always
  type: str
  sample: switched
version:
  description: The version the active slot runs.
  returned: always
  type: str
  sample: 3f9a1c0d+5e2a11c0b7d4
steps:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: ["started slot b, healthy", "slot b active", "upstream rendered and reloaded", "slot a drained and stopped"]
marker:
  description: Path of the marker file that names the active slot.
  returned: always
  type: str
  sample: /var/lib/podops/ab/shop.json
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..module_utils._compose import HAS_YAML, YAML_IMPORT_ERROR
from ..module_utils._module import SWITCH_ARGSPEC, switch_and_exit


def main() -> None:
    module = AnsibleModule(
        argument_spec=SWITCH_ARGSPEC,
        supports_check_mode=True,
        required_if=[("backend", "compose", ("project_src",)), ("backend", "systemd", ("unit", "version"))],
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    switch_and_exit(module)


if __name__ == "__main__":
    main()
