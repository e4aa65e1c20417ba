# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secret values a service reads, and masking them out of what podops shows (failure logs, diffs).

PRIVATE to the podops.gitops collection: no API guarantee for other code.

A service's secrets are the values of its env files (``.env`` and every ``env_file``), the plaintexts of its
ansible-vault files and the files of its compose ``secrets:``. Text podops shows a person (a failing container's
log, a healthcheck's output, a ``--diff``) has each of them replaced by ``MASK`` first.
"""

from __future__ import annotations

import os
import typing as t

from ._compose import ComposeProject, parse_dotenv
from ._digest import Secrets

MASK = "********"
# Shorter values (a port, "true", "1") would mask half of every log line and protect nothing.
MIN_SECRET_LENGTH = 4
MAX_SECRET_FILE = 64 * 1024


def _read(path: str) -> str | None:
    try:
        if os.path.getsize(path) > MAX_SECRET_FILE:
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def secret_files(project: ComposeProject | None) -> list[str]:
    """Absolute paths of the files whose content is secret: env files and the compose ``secrets:`` files."""
    if project is None:
        return []
    paths = [ref.path for ref in project.env_files]
    for entry in (project.raw.get("secrets") or {}).values() if isinstance(project.raw.get("secrets"), dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            paths.append(os.path.normpath(os.path.join(project.service_dir, entry["file"])))
    return paths


def secret_values(project: ComposeProject | None, secrets: Secrets | None = None) -> list[str]:
    """Every secret value of a service, longest first (so a value that contains another is masked whole)."""
    found: set[str] = set()
    texts: list[tuple[str, bool]] = []  # (text, is an env file)
    if project is not None:
        found.update(project.dotenv.values())
        for ref in project.env_files:
            text = _read(ref.path)
            if text is not None:
                texts.append((text, True))
        for path in secret_files(project)[len(project.env_files) :]:
            text = _read(path)
            if text is not None:
                texts.append((text, False))
    for plaintext in secrets.plaintexts.values() if secrets is not None else []:
        texts.append((plaintext.decode("utf-8", "replace"), True))
    for text, env_like in texts:
        if env_like:
            found.update(parse_dotenv(text).values())
        found.update(line.strip() for line in text.splitlines())
        found.add(text.strip())
    return sorted((value for value in found if len(value) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, values: t.Iterable[str]) -> str:
    """``text`` with every value replaced by ``MASK``, longest first (a value that contains another goes whole)."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_env_text(text: str) -> str:
    """An env file with every value masked, keys and comments kept: ``API_TOKEN=********``."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        key, sep, _value = line.partition("=")
        if stripped and not stripped.startswith("#") and sep:
            lines.append(f"{key}={MASK}")
        else:
            lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")
