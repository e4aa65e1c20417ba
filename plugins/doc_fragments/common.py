# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options every podops module takes: where the env repo and the state are, which binaries to use.
    DOCUMENTATION = r"""
options:
  repo_dir:
    description:
      - The env repo checkout (the folder that holds O(services_dir)).
    type: path
    required: true
  services_dir:
    description:
      - Folder of the env repo, relative to O(repo_dir), with one sub-folder per service (compose project).
      - A missing or empty services folder fails the run and changes nothing; it never prunes.
    type: str
    default: services
  state_dir:
    description:
      - Where podops keeps its state, snapshots, overrides, run reports and lock (created 0700).
      - Defaults to C(/var/lib/podops) for root and C($XDG_STATE_HOME/podops) (C(~/.local/state/podops)) otherwise.
    type: path
  project_prefix:
    description:
      - Prefix of every compose project name podops creates (C(<prefix><service>)).
    type: str
    default: ''
  podman_executable:
    description:
      - Path or name of the podman binary.
    type: str
  vault_plaintexts:
    description:
      - Internal, set by the module's action plugin. Plaintexts of the ansible-vault files of the env repo, decrypted
        on the controller with the vault password given the usual Ansible ways (C(--vault-password-file),
        C(--vault-id)). Never logged.
      - A vault-encrypted file (an env file or a mounted file) is digested by its plaintext, so re-encrypting the same
        content redeploys nothing; at deploy time it is decrypted into a root-only runtime folder.
    type: dict
  vault_errors:
    description:
      - Internal, set by the module's action plugin. Why a vault file could not be decrypted; that service fails and its
        running version is left alone.
    type: dict
  vault_provided:
    description:
      - Internal, set by the module's action plugin once it has decrypted what the module asked for.
    type: bool
    default: false
requirements:
  - podman >= 4.0
  - git, when the env repo is a git checkout
  - PyYAML
"""

    # Options of the modules that change the host: they take the host lock and write a run report.
    RUN = r"""
options:
  trigger:
    description:
      - What started this run; recorded in the run report.
    type: str
    choices: [cli, timer, webhook, laptop]
    default: cli
  run_id:
    description:
      - Id of this run, naming its report C(<state_dir>/runs/<run_id>.json). Letters, digits, C(.), C(_), C(-), at most 64.
      - Default is a new sortable id such as C(20261126T123456Z-3f9a1c). The webhook shim passes its own to find the report of
        the run it started.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another reconcile on this host to finish. V(0) refuses at once.
    type: float
    default: 300
  keep_runs:
    description:
      - How many run reports to keep under C(<state_dir>/runs/).
    type: int
    default: 100
  parallel:
    description:
      - How many services may deploy at the same time.
    type: int
    default: 4
  fail_on_service_error:
    description:
      - Fail the task when a service failed or was rolled back. The reconcile role sets V(false) to print its summary
        first and fail afterwards.
    type: bool
    default: true
  compose_executable:
    description:
      - Path or name of podman-compose. By default the one next to the Python running the module, else E(PATH).
    type: str
  notify_urls:
    description:
      - Apprise URLs to send one message per run to (ntfy, Gotify, Matrix, Slack, Telegram, C(mailto://), C(json://)
        webhooks, ...) when the run has something in O(notify_on) to tell. They are secrets (tokens, passwords), so keep them in
        ansible-vault or a root-only file; they are never printed, logged or written to the run report.
      - A service that keeps failing with the same error is told once, then again when its error changes or it recovers
        (memory in C(<state_dir>/notify-memory.json)). A message that cannot be delivered never fails the run; it is
        recorded in the report's C(notifications) and shown as a warning.
      - Needs the C(apprise) Python library next to the module's Python (the podops venv has it); without it each URL is
        reported as not delivered and the run goes on.
      - After a real run the settings are kept in C(<state_dir>/notify.json) (mode 0600) for podops-pull's fast lane.
    type: list
    elements: str
    default: []
  notify_on:
    description:
      - What makes a message. V(recovered) is a service (or the run) that failed in an earlier run and is healthy again.
    type: list
    elements: str
    choices: [failed, rolled_back, recovered, deployed, pruned, orphaned]
    default: [failed, rolled_back, recovered]
  notify_timeout:
    description:
      - Seconds the run waits, at most, for all its notifications and the commit status together (each phase). A receiver
        that is down or hangs costs the run that long and is reported as not delivered.
    type: float
    default: 5
  commit_status:
    description:
      - Post a commit status to the git host for the commit a run deploys - V(pending) when the commit is new for the
        context, then V(success) or V(failure) (GitLab V(failed)) with a description such as C(3 deployed, 1 rolled back).
        On a commit that already has a status only a change of state is posted; a run that changes nothing posts nothing.
      - Not in check mode. Failures to post are reported like notifications; the token never appears anywhere.
    type: dict
    suboptions:
      provider:
        description: The git host's API.
        type: str
        required: true
        choices: [github, gitea, forgejo, gitlab]
      repository:
        description: C(owner/name) (GitHub, Gitea, Forgejo), or the GitLab project's ID or C(group/project) path.
        type: str
        required: true
      api_url:
        description:
          - The API's address. Default C(https://api.github.com) and C(https://gitlab.com/api/v4); required for Gitea and
            Forgejo (C(https://codeberg.org); C(/api/v1) is added when missing, as C(/api/v4) for GitLab).
        type: str
      token:
        description:
          - The API token (GitHub fine-grained token with commit statuses write, Gitea/Forgejo token with repository write,
            GitLab token with api scope).
        type: str
      token_file:
        description: A file on the host holding the token (root only), read at each run; instead of O(commit_status.token).
        type: path
      context:
        description: The status context (GitLab C(name)). Default C(podops/<host name>).
        type: str
  status_url:
    description:
      - Base URL of the webhook shim's status page, for the link in messages and the commit status C(target_url).
        Default is the one the podops.gitops.webhook role recorded in C(<state_dir>/status-url), if any.
    type: str
requirements:
  - podman-compose >= 1.1.0 (1.6.0 recommended), next to the Python that runs the module or on E(PATH)
  - apprise, only for O(notify_urls)
"""
