#!/usr/bin/python
# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_deploy
short_description: Reconcile the podman-compose services of an env repo checkout
version_added: 0.1.0
description:
  - Makes the podman-compose projects on the host match the service folders of an env repo checkout, in one
    module call for all services - plan, prune, apply, record, report (prune first, so that the ports and
    container names of services that left the repo are free for the ones that take them over).
  - B(Plan.) Each service folder under O(services_dir) is digested (git-tracked files by relative path, mode and
    content; the compose file, C(.env) and every C(env_file) it references even when git ignores them or they lie
    outside the folder; symlinks by target; C(x-podops.ignore) globs left out). The digest is compared with the
    state store and with the labels of the running containers. Only services of active compose profiles count
    (C(COMPOSE_PROFILES) and C(x-podops.profiles)); a file compose reads that does not exist fails the service
    in the plan, every missing file named at once.
  - B(Apply.) Services that are new, changed, drifted or failed last time are deployed, independent ones in parallel
    (O(parallel)), in waves of C(x-podops.order). Missing images are pulled before anything is stopped;
    C(podman-compose up -d) recreates only containers whose configuration changed; podops then waits for every
    container to be running and healthy for several consecutive samples, running healthchecks itself.
  - B(Time limits.) Every command has one (C(x-podops.timeouts); pull 900 s, up and down 300 s, others 60 s by
    default); a command that outlives it is ended with its process group and its service fails like any other.
  - B(Rollback.) When a deploy fails, the last good version is brought back from a snapshot in the state folder
    (no git history needed) and the service is reported C(rolled_back); the next run retries it.
  - B(Prune.) Services that left the repo are reported C(orphaned); with O(prune=true) their containers, pod and
    networks are removed (only projects podops deployed; volumes are kept).
  - B(Report.) A run report is written atomically to C(<state_dir>/runs/<run id>.json) and C(<state_dir>/last-run.json);
    a check-mode run writes C(<state_dir>/last-check.json) instead of C(last-run.json), which keeps the last real run's.
    A real run (not check mode, not a redeploy of one service) also writes C(<state_dir>/engine.json), the options
    it ran with (no secrets), so that podops-pull's fast lane can run the same engine without ansible-playbook.
  - B(Failures.) The error of a failed or rolled-back service carries the last lines (up to 40, secret values masked)
    of the failing container's log and, for a health gate that never passed, the healthcheck's own output, captured
    before the rollback; the run report has them in the service's C(failure_log).
  - B(Notify.) With O(notify_urls) one message per run goes to each Apprise URL when something in O(notify_on)
    happened (a repeated failure once); with O(commit_status) the deployed commit gets C(pending), then
    C(success) or C(failure). Both within O(notify_timeout), never failing the run; the outcome is the report's
    C(notifications). Not in check mode.
  - Only one reconcile runs on a host at a time (an flock on C(<state_dir>/reconcile.lock), released by the kernel
    if a run dies).
author:
  - podops.gitops contributors (@podops)
extends_documentation_fragment:
  - podops.gitops.common
  - podops.gitops.common.run
options:
  services:
    description:
      - Restrict this host to these services (names or shell globs). Empty means all.
      - A plain name that is not a service of the repo is an error; a deployed service that is no longer selected
        is reported C(orphaned) with reason C(deselected).
    type: list
    elements: str
    default: []
  prune:
    description:
      - Remove the containers, pods and networks of services that left the repo. Volumes are never removed.
    type: bool
    default: false
  service:
    description:
      - Redeploy only this service with fresh images (its mutable images are pulled; containers whose image changed
        are recreated, health-gated, with rollback), with every other option as for the reconcile - the one path
        C(podops.gitops.redeploy) and C(podops-pull -e podops_service=NAME) take.
      - It must be a service folder of the repo and, when O(services) is set, one of them; checked before anything
        runs. Other services are neither planned nor pruned.
    type: str
  image_updates:
    description:
      - Also pull the mutable images (tags, not digests) of unchanged services and apply the ones whose image
        changed, health-gated, with the previous image kept and restored on failure (reason C(image)).
      - A service's C(x-podops.image_updates) overrides this. In check mode nothing is pulled; the plan compares the
        running containers with the local images.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - In check mode the plan is computed and returned, nothing is pulled, started or stopped, and the run report
        is written with C(check_mode=true) to C(last-check.json); the summary says C(would deploy).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff lists each service with the action and reason, and the files that changed; for a service to deploy,
        a unified diff of each changed text file against the last deployed snapshot (values of env files and
        ansible-vault or secret files masked, binary files named only); for a new service its images and ports.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details:
      - A second run with an unchanged repo and healthy containers changes nothing and restarts nothing.
notes:
  - On hosts without systemd, podman does not run healthchecks by itself; podops runs them on demand, so the health
    gate works there too.
  - The unit of deployment is the service folder; any change in it recreates that project's containers.
seealso:
  - module: podops.gitops.service_plan
  - module: podops.gitops.image_update
"""

EXAMPLES = r"""
- name: Reconcile every service of the checkout
  podops.gitops.compose_deploy:
    repo_dir: /srv/env-repo

- name: Only the services of this host, and remove the ones that left the repo
  podops.gitops.compose_deploy:
    repo_dir: /srv/env-repo
    services: [web, "db-*"]
    prune: true
    trigger: timer
  register: podops_result

- name: Redeploy one service with fresh images, with the same options as the reconcile
  podops.gitops.compose_deploy:
    repo_dir: /srv/env-repo
    services: [web, "db-*"]
    project_prefix: prod-
    service: web

- name: Show what would change
  podops.gitops.compose_deploy:
    repo_dir: /srv/env-repo
  check_mode: true
  diff: true
"""

RETURN = r"""
report:
  description:
    - The run report, as written to C(last-run.json) (C(last-check.json) in check mode).
    - A failed or rolled-back service whose container failed the health gate also has C(failure_log) -
      C(container), C(lines) (its last log lines, up to 40, secret values masked, read before the rollback) and
      C(healthcheck) (what its healthcheck printed last, or null).
  returned: success or service failure
  type: dict
  sample:
    run_id: 20261126T123456Z-3f9a1c
    trigger: cli
    commit: 4b825dc642cb6eb9a060e54bf8d69288fbee4904
    started: "2026-11-26T12:34:56.000000Z"
    finished: "2026-11-26T12:35:02.000000Z"
    check_mode: false
    result: changed
    services:
      web:
        action: deployed
        reason: changed
        changed_files: [conf/site.conf]
        digest: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        previous_digest: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        error: null
        duration_s: 2.1
      api:
        action: rolled_back
        reason: changed
        changed_files: [compose.yaml]
        digest: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
        previous_digest: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
        error: "not healthy after 30s: container api_app_1 is not healthy yet (its healthcheck said: wget: server returned error: HTTP/1.1 404 Not Found)"
        duration_s: 31.4
        failure_log:
          container: api_app_1
          lines: ["listening on :8080", "GET /healthz 404"]
          healthcheck: "wget: server returned error: HTTP/1.1 404 Not Found"
report_path:
  description: Path of this run's report under C(<state_dir>/runs/).
  returned: success or service failure
  type: str
  sample: /var/lib/podops/runs/20261126T123456Z-3f9a1c.json
plan:
  description: Per service, what the plan decided before applying.
  returned: success or service failure
  type: dict
  sample: {web: {action: deploy, reason: changed, project: web, changed_files: [compose.yaml]}}
summary:
  description:
    - One line per service with its action, reason and published ports (C(localhost:8080), C(udp/53); URLs such
      as C(http://localhost:8080/) with C(x-podops.url_scheme)).
  returned: success or service failure
  type: list
  elements: str
  sample:
    - "web: deployed (changed, 2.1s) http://localhost:8080/"
    - "dns: unchanged udp/53 localhost:53"
    - "api: rolled_back (changed, 31.4s) localhost:8081 - not healthy after 30s: container api_app_1 is not healthy yet"
    - "  last 2 log line(s) of api_app_1 (before the rollback):"
    - "  | listening on :8080"
    - "  | GET /healthz 404"
failed_services:
  description: Services that failed or were rolled back.
  returned: success or service failure
  type: list
  elements: str
  sample: [api]
message:
  description:
    - When a service failed, the text the run ends with (the task's C(msg) with O(fail_on_service_error=true)) -
      each failed service with its error, and the report's path; null otherwise.
  returned: success or service failure
  type: str
  sample: "service(s) failed: api.\napi: not healthy after 30s: ...\nTheir last good version was kept where there was one; see /var/lib/podops/runs/..."
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..module_utils._compose import HAS_YAML, YAML_IMPORT_ERROR
from ..module_utils._module import COMMON_ARGSPEC, RUN_ARGSPEC, module_options, run_and_exit


def main() -> None:
    argument_spec = dict(COMMON_ARGSPEC, **RUN_ARGSPEC)
    argument_spec.update(
        services={"type": "list", "elements": "str", "default": []},
        prune={"type": "bool", "default": False},
        image_updates={"type": "bool", "default": False},
        service={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    run_and_exit(module, module_options(module))


if __name__ == "__main__":
    main()
