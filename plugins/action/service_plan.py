# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for podops.gitops.service_plan: decrypts the env repo's ansible-vault files on the controller."""

from __future__ import annotations

from ansible_collections.podops.gitops.plugins.plugin_utils._vault_action import VaultActionModule


class ActionModule(VaultActionModule):
    pass
