# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shim's config validation and its SQLite store (replay guard, run history)."""

from __future__ import annotations

import json
import os

import pytest
from podops_webhook.config import ConfigError, load
from podops_webhook.store import Store


def write(tmp_path, text: str, secret: bytes = b"s3cr3t\n", mode: int = 0o600):
    (tmp_path / "secret").write_bytes(secret)
    (tmp_path / "secret").chmod(mode)
    (tmp_path / "cfg.yml").write_text(text.replace("SECRET", str(tmp_path / "secret")))
    return str(tmp_path / "cfg.yml")


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = load(write(tmp_path, "secret_file: SECRET\n"))
    assert (config.host, config.port, config.loopback) == ("127.0.0.1", 9300, True)
    assert config.reconcile_command == ["/opt/podops/bin/podops-pull"] == config.redeploy_command
    assert config.db_path == "/var/lib/podops/webhook/webhook.sqlite3"
    assert config.marker_path == "/var/lib/podops/ab/webhook.json"
    assert config.secrets == dict.fromkeys(("github", "gitea", "forgejo", "gitlab"), b"s3cr3t")
    assert "s3cr3t" not in repr(config)


def test_slots_credentials_and_provider_secrets(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "gitlab-token").write_bytes(b"gl-token")
    (creds / "gitlab-token").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write(tmp_path, "secret_file: SECRET\nprovider_secret_files: {gitlab: gitlab-token}\nlisten: {a: '[::1]:9400', b: '127.0.0.1:9401'}\n")
    config = load(path, slot="a")
    assert (config.host, config.port) == ("::1", 9400) and config.loopback
    assert config.secrets["gitlab"] == b"gl-token" and config.secrets["github"] == b"s3cr3t"
    assert load(path, slot="b").port == 9401
    with pytest.raises(ConfigError, match="--slot a or --slot b"):
        load(path)


@pytest.mark.parametrize(
    ("text", "secret", "mode", "message"),
    [
        ("secret_file: SECRET\n", b"\n \n", 0o600, "is empty"),
        ("secret_file: SECRET\n", b"x", 0o640, "readable by other users (mode 0640)"),
        ("secret_file: SECRET\nmax_body_bytes: 0\n", b"x", 0o600, "max_body_bytes must be greater than 0"),
        ("secret_file: SECRET\nmax_body_bytes: yes\n", b"x", 0o600, "max_body_bytes must be a integer"),
        ("secret_file: SECRET\nreconcile_command: []\n", b"x", 0o600, "reconcile_command must be a non-empty list"),
        ("secret_file: SECRET\nreconcile_command: [podops-pull, 3]\n", b"x", 0o600, "reconcile_command must be a non-empty list"),
        ("secret_file: SECRET\nstate_dir: relative\n", b"x", 0o600, "state_dir must be an absolute path"),
        ("secret_file: SECRET\nservices_dir: ../x\n", b"x", 0o600, "services_dir is a folder inside repo_dir"),
        ("secret_file: SECRET\nprovider_secret_files: {bitbucket: x}\n", b"x", 0o600, "unknown provider 'bitbucket'"),
        ("secret_file: SECRET\nlisten: {a: 127.0.0.1:1, c: 127.0.0.1:2}\n", b"x", 0o600, "unknown slot 'c'"),
        ("secret_file: SECRET\nlisten: 127.0.0.1:70000\n", b"x", 0o600, "is not HOST:PORT"),
        ("secret_file: SECRET\ndebounce_seconds: 5\ndebounce_max_seconds: 1\n", b"x", 0o600, "debounce_max_seconds at least"),
        ("- a list\n", b"x", 0o600, "must be a YAML mapping"),
        ("secret_file: SECRET\nstatus_token_file: /nonexistent/token\n", b"x", 0o600, "status_token_file: secret file /nonexistent/token does not exist"),
    ],
)
def test_config_errors(tmp_path, monkeypatch, text, secret, mode, message):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(write(tmp_path, text, secret, mode))


def test_bad_slot_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="--slot must be one of a, b"):
        load(str(tmp_path / "x.yml"), slot="c")
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "x.yml"))


def test_store_dedupes_across_reopen_and_connections(tmp_path):
    path = str(tmp_path / "db" / "webhook.sqlite3")
    one, two = Store(path), Store(path)  # the two A/B slots share the file
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert one.claim_delivery("d-1", "github", "push", "/hooks/github", "queued", "push", "a") is None
    one.create_run("r-1", "webhook", "a")
    one.link_delivery("d-1", "r-1")
    assert two.claim_delivery("d-1", "github", "push", "/hooks/github", "queued", "push", "b") == "r-1"
    one.close()
    again = Store(path)
    assert again.claim_delivery("d-1", "gitea", "push", "/hooks/gitea", "queued", "push", "a") == "r-1"
    assert again.claim_delivery("d-2", "github", "ping", "/hooks/github", "ping", "pong", "a") is None
    assert again.claim_delivery("d-2", "github", "ping", "/hooks/github", "ping", "pong", "a") == "ping"
    assert again.run("r-1")["delivery_ids"] == ["d-1"]


def test_store_runs_lifecycle_prune_and_stale(tmp_path):
    store = Store(str(tmp_path / "w.sqlite3"))
    for index in range(5):
        store.create_run(f"r-{index}", "webhook", "a")
        store.update_queued(f"r-{index}", True, {"web"}, "c" * 40, 2)
        store.start_run(f"r-{index}")
        store.finish_run(f"r-{index}", "changed", 0, {"web": {"action": "deployed"}}, "log", None, "d" * 40)
    store.create_run("r-queued", "webhook", "a")
    store.create_run("r-other-slot", "webhook", "b")
    store.claim_delivery("old", "github", "push", "/hooks/github", "queued", "push", "a")
    store.db.execute("UPDATE deliveries SET received = '2020-01-01T00:00:00.000000Z' WHERE id = 'old'")
    store.claim_delivery("new", "github", "push", "/hooks/github", "queued", "push", "a")
    store.prune_runs(keep=3)
    assert store.delivery("old") is None and store.delivery("new") is not None
    ids = [run["id"] for run in store.runs(limit=50)]
    assert "r-queued" in ids and "r-other-slot" in ids and len(ids) == 5
    run = store.run("r-4")
    assert run["commit"] == "d" * 40 and run["requested_commit"] == "c" * 40 and run["outcome"] == {"web": {"action": "deployed"}}
    assert run["services"] == ["web"] and run["reconcile"] is True and run["log"] == "log"
    assert store.close_stale_runs("a") == 1
    assert store.run("r-queued")["status"] == "interrupted" and store.run("r-other-slot")["status"] == "queued"
    assert json.loads(json.dumps(store.runs()))  # JSON-ready for the API


def test_service_names_are_folders_of_the_checkout(tmp_path):
    from podops_webhook.services import Services, import_compose

    root = tmp_path / "repo" / "services"
    (root / "web").mkdir(parents=True)
    (root / "web" / "compose.yaml").write_text("services:\n  main:\n    image: ghcr.io/team/web:1\n    env_file: .env\n")
    (root / "nocompose").mkdir()
    (root / "README.md").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "compose.yaml").write_text("services:\n  main:\n    image: x\n")
    (root / "escape").symlink_to(outside)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "compose.yaml").write_text("services:\n  main:\n    image: x\n")
    (root / "broken").mkdir()
    (root / "broken" / "compose.yaml").write_text("services: [\n")
    services = Services(str(root), import_compose(""))
    assert services.names() == ["broken", "web"]
    for bad in ("..", ".", "../repo", "web/../web", "escape", ".hidden", "nocompose", "README.md", "-web", "", "web\n"):
        assert not services.exists(bad), bad
    assert services.using(["team/web"]) == {"web": ["ghcr.io/team/web:1"]}
    assert services.using(["team/api"]) == {}
