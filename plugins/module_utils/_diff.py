# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``--check --diff`` shows for a service to deploy: a unified diff of each changed file against the last
deployed snapshot, and for a new service its images and published ports.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Secrets never show: env files (``.env``, every ``env_file``) are diffed with their values masked (the keys
show), ansible-vault files and compose ``secrets:`` files are named only, and every secret value of the
service is masked in the rest. Binary files are named only.
"""

from __future__ import annotations

import difflib
import os
import typing as t

from ._compose import ComposeProject
from ._digest import Secrets
from ._plan import ServiceSpec
from ._redact import mask_env_text, redact, secret_files, secret_values

MAX_FILE_BYTES = 256 * 1024
MAX_DIFF_LINES = 200
VAULT_HEADER = b"$ANSIBLE_VAULT;"


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None


def _text(data: bytes | None) -> str | None:
    """The file as text, or None when it is binary (or too big to show)."""
    if data is None:
        return ""
    if b"\0" in data or len(data) > MAX_FILE_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_env_file(key: str, path: str, project: ComposeProject | None) -> bool:
    if os.path.basename(key) == ".env" or key.endswith(".env"):
        return True
    return project is not None and any(os.path.normpath(ref.path) == os.path.normpath(path) for ref in project.env_files)


def file_diff(key: str, before_path: str | None, after_path: str, spec: ServiceSpec, values: t.Sequence[str], secret_paths: t.Collection[str]) -> list[str]:
    """The lines ``--diff`` shows for one changed file of ``spec`` (``before_path`` None: new file)."""
    before, after = _read(before_path), _read(after_path)
    real = os.path.realpath(after_path)
    if real in spec.vault_files or real in secret_paths or any(data is not None and data.startswith(VAULT_HEADER) for data in (before, after)):
        return [f"    {key}: secret file changed (content not shown)"]
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return [f"    Binary file {key} changed"]
    if _is_env_file(key, after_path, spec.project):
        old, new = mask_env_text(old), mask_env_text(new)
        if old == new:
            return [f"    {key}: values changed (env file: values are not shown)"]
    old, new = redact(old, values), redact(new, values)
    lines = list(
        difflib.unified_diff(
            old.splitlines(),
            new.splitlines(),
            fromfile=f"a/{key}" if before is not None else "/dev/null",
            tofile=f"b/{key}" if after else "/dev/null",
            lineterm="",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more line(s)"]
    return [f"    {line}" for line in lines]


def service_diff(spec: ServiceSpec, changed: t.Sequence[str], snapshot_dir: str | None, secrets: Secrets | None = None) -> list[str]:
    """Per changed file, what changed since the last deployed snapshot; for a service without one (new), its
    images and published ports."""
    project = spec.project
    values = secret_values(project, secrets)
    secret_paths = {os.path.realpath(path) for path in secret_files(project)[len(project.env_files) if project else 0 :]}
    lines: list[str] = []
    if snapshot_dir is None:
        if project is not None:
            images = sorted(set(project.service_images().values()))
            builds = sorted(name for name, svc in project.services.items() if svc.get("build"))
            ports = project.published_ports()
            lines.append(f"    images: {', '.join(images) or 'none'}" + (f"; built here: {', '.join(builds)}" if builds else ""))
            lines.append(f"    published ports: {', '.join(ports) or 'none'}")
        return lines
    for key in changed:
        after_path = key if os.path.isabs(key) else os.path.normpath(os.path.join(spec.service_dir, key))
        before_path = None if os.path.isabs(key) else os.path.normpath(os.path.join(snapshot_dir, key))
        if before_path is not None and not os.path.lexists(before_path):
            before_path = None
        if not os.path.lexists(after_path):
            lines.append(f"    {key}: removed")
            continue
        if os.path.isabs(key):
            lines.append(f"    {key}: changed (outside the env repo: not in the snapshot)")
            continue
        lines += file_diff(key, before_path, after_path, spec, values, secret_paths)
    return lines
