# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who sent this request, and may we believe it? Pure functions over headers and the raw body.

The signature is checked over the raw bytes, before anything parses them, with a constant-time compare:
GitHub ``X-Hub-Signature-256: sha256=<hex>``, Gitea ``X-Gitea-Signature: <hex>``, Forgejo
``X-Forgejo-Signature: <hex>`` (it also sends the Gitea header), GitLab ``X-Gitlab-Token: <secret>``.
The format is chosen by the endpoint (``/hooks/<provider>``), never by whichever header happens to be there.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import typing as t

HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")
DELIVERY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Event names are short ASCII words: "push", "registry_package", GitLab's "Tag Push Hook".
EVENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")

# provider -> (signature headers in order of preference, kind: prefixed | hex | token)
SIGNATURE: dict[str, tuple[tuple[str, ...], str]] = {
    "github": (("X-Hub-Signature-256",), "prefixed"),
    "gitea": (("X-Gitea-Signature",), "hex"),
    "forgejo": (("X-Forgejo-Signature", "X-Gitea-Signature"), "hex"),
    "gitlab": (("X-Gitlab-Token",), "token"),
}
EVENT_HEADERS = {
    "github": ("X-GitHub-Event",),
    "gitea": ("X-Gitea-Event",),
    "forgejo": ("X-Forgejo-Event", "X-Gitea-Event"),
    "gitlab": ("X-Gitlab-Event",),
}
DELIVERY_HEADERS = {
    "github": ("X-GitHub-Delivery",),
    "gitea": ("X-Gitea-Delivery",),
    "forgejo": ("X-Forgejo-Delivery", "X-Gitea-Delivery"),
    "gitlab": ("Idempotency-Key", "X-Gitlab-Event-UUID"),
}


class AuthError(Exception):
    """The request is not signed with our secret (HTTP 401); the message says what was wrong."""


def _first(headers: t.Mapping[str, str], names: t.Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return name, value
    return None


def same_secret(offered: str | bytes, expected: bytes) -> bool:
    """Constant-time comparison that does not even leak the length: the SHA-256 digests of both sides are
    compared, never the values. Header values that held non-UTF-8 bytes (surrogate escapes) compare too."""
    if isinstance(offered, str):
        offered = offered.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(hashlib.sha256(offered).digest(), hashlib.sha256(expected).digest())


def signature_hex(secret: bytes, raw: bytes) -> str:
    return hmac.new(secret, raw, hashlib.sha256).hexdigest()


def _other_provider_hint(provider: str, headers: t.Mapping[str, str]) -> str:
    for other, (names, _kind) in SIGNATURE.items():
        if other == provider:
            continue
        found = _first(headers, names)
        if found:
            return f"; the request carries {found[0]}, as {other} sends it: point the webhook at /hooks/{other}"
    return ""


def verify(provider: str, headers: t.Mapping[str, str], raw: bytes, secret: bytes) -> None:
    """Raise AuthError unless ``raw`` carries a valid signature (or token) for ``provider``."""
    names, kind = SIGNATURE[provider]
    found = _first(headers, names)
    if found is None or not found[1].strip():
        raise AuthError(f"missing {names[0]} header: {provider} webhooks must be configured with the secret{_other_provider_hint(provider, headers)}")
    name, value = found[0], found[1].strip()
    if kind == "token":
        if not same_secret(value, secret):
            raise AuthError(f"{name} does not match the configured secret")
        return
    if kind == "prefixed":
        if not value.startswith("sha256="):
            raise AuthError(f"{name} must look like sha256=<64 hex digits>")
        value = value[len("sha256=") :]
    if not HEX_RE.fullmatch(value):
        raise AuthError(f"{name} must be 64 hex digits (HMAC-SHA256 of the body)")
    if not hmac.compare_digest(signature_hex(secret, raw).encode(), value.lower().encode()):
        raise AuthError(f"{name} does not match the body: wrong secret, or the body was changed on the way")


def event_name(provider: str, headers: t.Mapping[str, str]) -> str | None:
    found = _first(headers, EVENT_HEADERS[provider])
    return found[1].strip() if found else None


def valid_event_name(value: str) -> bool:
    return bool(EVENT_RE.fullmatch(value))


def delivery_id(provider: str, headers: t.Mapping[str, str]) -> str | None:
    """The delivery's id as sent (the same on a redelivery), or None when there is none."""
    found = _first(headers, DELIVERY_HEADERS[provider])
    return found[1].strip() if found else None


def valid_delivery_id(value: str) -> bool:
    return bool(DELIVERY_RE.fullmatch(value))
