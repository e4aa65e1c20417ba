# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""podops webhook shim: verify git-host webhooks, run the podops reconcile in one background worker,
keep every run in SQLite and show them on a status page.

Run it with ``python -m podops_webhook --config FILE [--slot a|b]`` (role ``podops.gitops.webhook``
installs it and its systemd template unit ``podops-webhook@.service``).
"""

from __future__ import annotations

__version__ = "1.0.0"
