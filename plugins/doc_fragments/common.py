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
requirements:
  - podman-compose >= 1.1.0 (1.6.0 recommended), next to the Python that runs the module or on E(PATH)
"""
