# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a verified webhook asks for: a reconcile, a redeploy of the services using a package, a pong,
or nothing (with the reason). Pure: a provider, an event name and the parsed payload in, a Decision out.

Handled events (anything else is answered 200 "ignored" with the reason, never 4xx: a git host disables
hooks that keep getting 4xx):
- push to the deployed branch (GitHub, Gitea, Forgejo ``push``; GitLab ``Push Hook``) -> reconcile
- GitHub ``package`` / ``registry_package`` with action ``published`` -> redeploy services using the package
- Gitea/Forgejo ``package`` with action ``created`` -> the same
- ``release`` with action ``published`` (GitLab ``Release Hook`` with action ``create``) -> redeploy the
  services whose images are named after the repository
- GitHub ``ping`` -> pong, nothing deployed
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

HANDLED = "push, package, registry_package, release, ping"
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")


@dataclass
class Decision:
    kind: str  # reconcile | packages | ping | ignore
    reason: str
    commit: str | None = None
    packages: list[str] = field(default_factory=list)  # names an image may carry: "owner/app", "app"


def _get(payload: t.Any, *path: str) -> t.Any:
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def _str(value: t.Any) -> str:
    return value if isinstance(value, str) else ""


def normalize_event(provider: str, event: str | None) -> str:
    """GitLab's ``Push Hook`` -> ``push``; others as they are, lowercased."""
    if not event:
        return ""
    event = event.strip().lower()
    if provider == "gitlab":
        return {"push hook": "push", "tag push hook": "tag_push", "release hook": "release"}.get(event, event)
    return event


def _push(provider: str, payload: dict, branch: str) -> Decision:
    ref = _str(payload.get("ref"))
    want = f"refs/heads/{branch}"
    if payload.get("deleted") is True:
        return Decision("ignore", f"{ref or 'the ref'} was deleted; nothing to deploy")
    if ref != want:
        return Decision("ignore", f"push to {ref or 'an unnamed ref'}, not to the deployed branch {want}")
    commit = _str(payload.get("after")) or _str(payload.get("checkout_sha")) or None
    if commit and set(commit) == {"0"}:
        return Decision("ignore", f"{ref} was deleted; nothing to deploy")
    if commit and not COMMIT_RE.fullmatch(commit):
        commit = None  # only ever shown and recorded, but never as anything but a commit id
    return Decision("reconcile", f"push to {ref}", commit=commit)


def _package_names(package: dict) -> list[str]:
    name = _str(package.get("name")).strip().lower()
    if not name:
        return []
    owner = _str(_get(package, "owner", "login")) or _str(package.get("namespace"))
    names = [f"{owner.lower()}/{name}"] if owner and "/" not in name else [name]
    url = _str(_get(package, "package_version", "package_url"))
    if url:
        names.append(url.lower())
    return names


def _release_names(provider: str, payload: dict) -> list[str]:
    full = _str(_get(payload, "project", "path_with_namespace") if provider == "gitlab" else _get(payload, "repository", "full_name"))
    return [full.lower()] if full else []


def classify(provider: str, event: str | None, payload: dict, branch: str) -> Decision:
    """Decide what a verified delivery asks for."""
    name = normalize_event(provider, event)
    action = _str(payload.get("action")) or _str(_get(payload, "object_attributes", "action"))
    if not name:
        return Decision("ignore", f"no event header; handled events: {HANDLED}")
    if name == "ping":
        return Decision("ping", "pong: the webhook reaches podops and its signature is valid")
    if name == "push":
        return _push(provider, payload, branch)
    if name in ("package", "registry_package"):
        wanted = "created" if provider in ("gitea", "forgejo") else "published"
        if action != wanted:
            return Decision("ignore", f"{name} action {action or 'none'!r} is not {wanted!r}")
        package = payload.get(name) if isinstance(payload.get(name), dict) else payload.get("package")
        names = _package_names(package) if isinstance(package, dict) else []
        if not names:
            return Decision("ignore", f"{name} event without a package name")
        return Decision("packages", f"{name} {action}: {names[0]}", packages=names)
    if name == "release":
        wanted = "create" if provider == "gitlab" else "published"
        if action != wanted:
            return Decision("ignore", f"release action {action or 'none'!r} is not {wanted!r}")
        names = _release_names(provider, payload)
        if not names:
            return Decision("ignore", "release event without a repository name")
        return Decision("packages", f"release {action}: {names[0]}", packages=names)
    return Decision("ignore", f"event {name!r} is not handled (handled: {HANDLED})")


def image_path(ref: str) -> str:
    """``ghcr.io/Owner/App:1.2@sha256:...`` -> ``owner/app``: the repository path of an image reference,
    without registry, tag or digest, lowercased."""
    ref = ref.strip().lower().split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


def image_matches(image: str, names: t.Iterable[str]) -> bool:
    """True when the image is one of the packages: equal repository paths, or the package name is the
    path's tail (``app`` matches ``127.0.0.1:5000/app`` and ``team/app``; ``owner/app`` matches
    ``ghcr.io/owner/app``)."""
    path = image_path(image)
    for name in names:
        want = image_path(name)
        if want and (path == want or path.endswith("/" + want)):
            return True
    return False
