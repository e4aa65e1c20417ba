# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signatures (published test vectors) and event decisions of the webhook shim."""

from __future__ import annotations

import pytest
from podops_webhook.events import classify, image_matches, image_path
from podops_webhook.verify import AuthError, delivery_id, event_name, signature_hex, valid_delivery_id, verify

SECRET = b"s3cr3t"
BODY = b'{"action":"published"}'
BODY_HEX = "a1bcd25f0d45fe4064627e1b73d555d782bd9b69abc7e121fec723881503734b"


def test_github_published_test_vector():
    """GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"."""
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_hex(b"It's a Secret to Everybody", b"Hello, World!") == expected
    verify("github", {"X-Hub-Signature-256": "sha256=" + expected}, b"Hello, World!", b"It's a Secret to Everybody")


@pytest.mark.parametrize(
    ("provider", "headers"),
    [
        ("github", {"X-Hub-Signature-256": "sha256=" + BODY_HEX}),
        ("github", {"X-Hub-Signature-256": "sha256=" + BODY_HEX.upper()}),
        ("gitea", {"X-Gitea-Signature": BODY_HEX}),
        ("forgejo", {"X-Forgejo-Signature": BODY_HEX}),
        ("forgejo", {"X-Gitea-Signature": BODY_HEX}),  # Forgejo sends both headers
        ("gitlab", {"X-Gitlab-Token": "s3cr3t"}),
    ],
)
def test_valid_signatures(provider, headers):
    assert signature_hex(SECRET, BODY) == BODY_HEX
    verify(provider, headers, BODY, SECRET)


@pytest.mark.parametrize(
    ("provider", "headers", "message"),
    [
        ("github", {}, "missing X-Hub-Signature-256"),
        ("github", {"X-Hub-Signature-256": "  "}, "missing X-Hub-Signature-256"),
        ("github", {"X-Hub-Signature-256": BODY_HEX}, "sha256="),  # Gitea's bare hex on the GitHub endpoint
        ("github", {"X-Hub-Signature-256": "sha256=" + BODY_HEX[:-1]}, "64 hex digits"),
        ("github", {"X-Hub-Signature-256": "sha256=" + "g" * 64}, "64 hex digits"),
        ("github", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ("github", {"X-Gitea-Signature": BODY_HEX}, "point the webhook at /hooks/gitea"),
        ("gitea", {"X-Hub-Signature-256": "sha256=" + BODY_HEX}, "point the webhook at /hooks/github"),
        ("gitea", {"X-Gitea-Signature": "sha256=" + BODY_HEX}, "64 hex digits"),
        ("gitlab", {"X-Gitlab-Token": "s3cr3"}, "does not match"),
        ("gitlab", {"X-Hub-Signature-256": "sha256=" + BODY_HEX}, "missing X-Gitlab-Token"),
    ],
)
def test_invalid_signatures(provider, headers, message):
    with pytest.raises(AuthError, match=message.replace("=", "=").replace("/", "/")):
        verify(provider, headers, BODY, SECRET)


def test_signature_covers_the_exact_bytes():
    with pytest.raises(AuthError):
        verify("github", {"X-Hub-Signature-256": "sha256=" + BODY_HEX}, BODY + b"\n", SECRET)
    with pytest.raises(AuthError):
        verify("github", {"X-Hub-Signature-256": "sha256=" + BODY_HEX}, b'{"action": "published"}', SECRET)


def test_event_and_delivery_headers():
    headers = {"X-Forgejo-Event": "push", "X-Gitea-Event": "push", "X-Forgejo-Delivery": "abc-1"}
    assert event_name("forgejo", headers) == "push" and delivery_id("forgejo", headers) == "abc-1"
    assert delivery_id("gitlab", {"X-Gitlab-Event-UUID": "u-1", "Idempotency-Key": "k-1"}) == "k-1"
    assert delivery_id("github", {}) is None
    assert valid_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert not valid_delivery_id("a b") and not valid_delivery_id("../x") and not valid_delivery_id("x" * 200) and not valid_delivery_id("")


PUSH = {"ref": "refs/heads/main", "after": "c0ffee" + "0" * 34, "deleted": False}


@pytest.mark.parametrize(
    ("provider", "event", "payload", "kind", "reason"),
    [
        ("github", "push", PUSH, "reconcile", "push to refs/heads/main"),
        ("github", "push", {**PUSH, "ref": "refs/heads/dev"}, "ignore", "not to the deployed branch"),
        ("github", "push", {**PUSH, "ref": "refs/tags/v1"}, "ignore", "not to the deployed branch"),
        ("github", "push", {**PUSH, "deleted": True}, "ignore", "deleted"),
        ("github", "push", {**PUSH, "after": "0" * 40}, "ignore", "deleted"),
        ("github", "ping", {"zen": "x"}, "ping", "pong"),
        ("github", "issues", {"action": "opened"}, "ignore", "'issues' is not handled"),
        ("github", None, PUSH, "ignore", "no event header"),
        ("gitea", "push", PUSH, "reconcile", "push"),
        ("gitlab", "Push Hook", {"ref": "refs/heads/main", "checkout_sha": "abc"}, "reconcile", "push"),
        ("gitlab", "Tag Push Hook", {"ref": "refs/tags/v1"}, "ignore", "'tag_push' is not handled"),
        ("github", "package", {"action": "published", "package": {"name": "App", "owner": {"login": "Team"}}}, "packages", "team/app"),
        ("github", "package", {"action": "updated", "package": {"name": "app"}}, "ignore", "not 'published'"),
        ("github", "registry_package", {"action": "published", "registry_package": {"name": "app", "namespace": "team"}}, "packages", "team/app"),
        ("github", "package", {"action": "published"}, "ignore", "without a package name"),
        ("gitea", "package", {"action": "created", "package": {"name": "app", "owner": {"login": "team"}}}, "packages", "team/app"),
        ("forgejo", "package", {"action": "published", "package": {"name": "app"}}, "ignore", "not 'created'"),
        ("github", "release", {"action": "published", "repository": {"full_name": "team/app"}}, "packages", "team/app"),
        ("github", "release", {"action": "created", "repository": {"full_name": "team/app"}}, "ignore", "not 'published'"),
        ("gitlab", "Release Hook", {"action": "create", "project": {"path_with_namespace": "team/app"}}, "packages", "team/app"),
        ("gitlab", "Release Hook", {"object_attributes": {"action": "update"}}, "ignore", "not 'create'"),
    ],
)
def test_classify(provider, event, payload, kind, reason):
    decision = classify(provider, event, payload, "main")
    assert decision.kind == kind
    assert reason in decision.reason


def test_push_decision_carries_the_commit():
    assert classify("github", "push", PUSH, "main").commit == PUSH["after"]
    assert classify("github", "push", {**PUSH, "ref": "refs/heads/prod"}, "prod").kind == "reconcile"


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        ("ghcr.io/Owner/App:1.2", "owner/app"),
        ("ghcr.io/owner/app@sha256:" + "a" * 64, "owner/app"),
        ("127.0.0.1:5000/app:latest", "app"),
        ("localhost/podops-demo:1", "podops-demo"),
        ("nginx", "nginx"),
        ("library/nginx:1.27", "library/nginx"),
        ("registry.example.org:8443/a/b/c:tag", "a/b/c"),
    ],
)
def test_image_path(ref, path):
    assert image_path(ref) == path


def test_image_matches():
    assert image_matches("ghcr.io/team/app:latest", ["team/app"])
    assert image_matches("127.0.0.1:5000/app:latest", ["app"])
    assert image_matches("ghcr.io/team/app:latest", ["ghcr.io/team/app:v2"])  # a package_url
    assert not image_matches("ghcr.io/team/app-worker:latest", ["team/app"])
    assert not image_matches("ghcr.io/other/app:latest", ["team/app"])
    assert not image_matches("ghcr.io/team/myapp:latest", ["app"])
