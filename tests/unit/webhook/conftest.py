# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the shim package (roles/webhook/files/podops_webhook) importable for its unit tests."""

from __future__ import annotations

import os
import sys

_SHIM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "roles", "webhook", "files")

if _SHIM not in sys.path:
    sys.path.insert(0, _SHIM)


# The fixture, importable once the shim is on sys.path; pytest uses it by name.
from shimtest import setup  # noqa: E402,F401 # pylint: disable=unused-import,wrong-import-position
