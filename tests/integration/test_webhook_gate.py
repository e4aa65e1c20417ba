"""The shim's gate, over real HTTP against the real shim process: every bad request gets its status code
and starts nothing; good ones start exactly the runs they should, with the argv the contract fixes.

The deploy command here is the recorder in webhook_helpers.py (it logs its argv and writes a run report),
so these tests measure the shim's decisions in milliseconds; test_webhook_e2e.py runs the real reconcile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from webhook_helpers import OMIT, SECRET, SHIM_DIR, Shim, github_push, request, sign, write_secret

HELPERS = Path(__file__).with_name("webhook_helpers.py")
MAX_BODY = 4096
IMAGE = "127.0.0.1:5999/team/app:latest"


def make_repo(path: Path) -> Path:
    for name, image in (("web", IMAGE), ("other", "localhost/podops-demo:1")):
        (path / "services" / name).mkdir(parents=True)
        (path / "services" / name / "compose.yaml").write_text(f"services:\n  main:\n    image: {image}\n")
    (path / "services" / "README.md").write_text("not a service\n")
    return path


def recorder(base: Path, state_dir: Path, seconds: float = 0.0) -> list[str]:
    return [sys.executable, str(HELPERS), str(base / "record.jsonl"), str(state_dir), str(seconds)]


def recorded(base: Path) -> list[list[str]]:
    path = base / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    base = tmp_path_factory.mktemp("gate")
    repo = make_repo(base / "repo")
    state = base / "state"
    shim = Shim(
        base / "shim", reconcile_command=recorder(base, state), repo_dir=repo, state_dir=state, max_body_bytes=MAX_BODY, debounce_seconds=0.05, seed_routes=True
    )
    shim.start()
    shim.record_base = base
    yield shim
    assert shim.stop() == 0, shim.log()


PUBLISHED = {"action": "published"}
PUSH = github_push()
# (id, method, path, post kwargs, expected status, expected body fragment)
MATRIX = [
    ("missing-signature", "/hooks/github", {"signature": OMIT}, 401, "missing X-Hub-Signature-256"),
    ("empty-signature", "/hooks/github", {"signature": ""}, 401, "missing X-Hub-Signature-256"),
    ("wrong-signature", "/hooks/github", {"signature": "sha256=" + "0" * 64}, 401, "does not match"),
    ("malformed-signature", "/hooks/github", {"signature": "sha256=xyz"}, 401, "64 hex digits"),
    ("sha1-signature", "/hooks/github", {"signature": "sha1=" + "0" * 40}, 401, "sha256="),
    ("bare-hex-on-github", "/hooks/github", {"signature": sign(json.dumps(PUSH).encode())}, 401, "sha256="),
    ("wrong-secret", "/hooks/github", {"secret": b"not-the-secret"}, 401, "does not match"),
    ("gitea-headers-on-github", "/hooks/github", {"provider": "gitea"}, 401, "/hooks/gitea"),
    ("github-headers-on-gitea", "/hooks/gitea", {"provider": "github"}, 401, "/hooks/github"),
    ("wrong-secret-gitea", "/hooks/gitea", {"provider": "gitea", "secret": b"nope"}, 401, "does not match"),
    ("wrong-secret-forgejo", "/hooks/forgejo", {"provider": "forgejo", "secret": b"nope"}, 401, "does not match"),
    ("wrong-token-gitlab", "/hooks/gitlab", {"provider": "gitlab", "event": "Push Hook", "signature": "s3cr3t"}, 401, "does not match"),
    ("missing-token-gitlab", "/hooks/gitlab", {"provider": "gitlab", "event": "Push Hook", "signature": OMIT}, 401, "missing X-Gitlab-Token"),
    ("oversize", "/hooks/github", {"payload": {"pad": "x" * MAX_BODY, **PUSH}}, 413, "max_body_bytes"),
    ("form-encoded", "/hooks/github", {"payload": b"payload=%7B%7D", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ("no-content-type", "/hooks/github", {"content_type": ""}, 415, "application/json"),
    ("invalid-json", "/hooks/github", {"payload": b"{not json"}, 400, "not valid JSON"),
    ("empty-body", "/hooks/github", {"payload": b""}, 400, "not valid JSON"),
    ("json-array", "/hooks/github", {"payload": b"[1, 2]"}, 400, "JSON object"),
    ("missing-delivery-id", "/hooks/github", {"delivery": None}, 400, "delivery id"),
    ("bad-delivery-id", "/hooks/github", {"delivery": "x y\u00e9"}, 400, "delivery id"),
    ("unknown-event", "/hooks/github", {"event": "issues", "payload": {"action": "opened"}}, 200, "not handled"),
    ("no-event-header", "/hooks/github", {"event": None}, 200, "no event header"),
    ("wrong-branch", "/hooks/github", {"payload": github_push("feature")}, 200, "not to the deployed branch"),
    ("branch-deleted", "/hooks/github", {"payload": {**PUSH, "deleted": True, "after": "0" * 40}}, 200, "deleted"),
    ("ping", "/hooks/github", {"event": "ping", "payload": {"zen": "Keep it logically awesome.", "hook_id": 1}}, 200, "pong"),
    ("package-updated", "/hooks/github", {"event": "package", "payload": {"action": "updated", "package": {"name": "app"}}}, 200, "not 'published'"),
    (
        "package-no-service",
        "/hooks/github",
        {"event": "registry_package", "payload": {"action": "published", "registry_package": {"name": "unused", "namespace": "team"}}},
        200,
        "no service uses",
    ),
    ("gitea-package-published", "/hooks/gitea", {"provider": "gitea", "event": "package", "payload": {"action": "published"}}, 200, "not 'created'"),
    (
        "release-created",
        "/hooks/github",
        {"event": "release", "payload": {"action": "created", "repository": {"full_name": "team/app"}}},
        200,
        "not 'published'",
    ),
    ("gitlab-tag-push", "/hooks/gitlab", {"provider": "gitlab", "event": "Tag Push Hook", "payload": {"ref": "refs/tags/v1"}}, 200, "not handled"),
    ("unknown-provider", "/hooks/bitbucket", {}, 404, "unknown provider"),
    ("traversal-encoded", "/redeploy-and-update/..%2F..%2Fetc", {"payload": PUBLISHED}, 404, "no service"),
    ("traversal-dots", "/redeploy-and-update/%2E%2E", {"payload": PUBLISHED}, 404, "no service"),
    ("traversal-readme", "/redeploy-and-update/README.md", {"payload": PUBLISHED}, 404, "no service"),
    ("dash-name", "/redeploy-and-update/-rf", {"payload": PUBLISHED}, 404, "no service"),
    ("unknown-service", "/redeploy-and-update/nope", {"payload": PUBLISHED}, 404, "no service"),
    ("seed-not-published", "/redeploy-and-update/web", {"payload": {"action": "updated"}, "event": None}, 200, "not 'published'"),
    ("seed-bad-signature", "/deploy-all-changed", {"signature": "sha256=" + "1" * 64, "event": None}, 401, "does not match"),
    ("seed-ping", "/deploy-all-changed", {"event": "ping", "payload": {"zen": "z"}}, 200, "pong"),
]


def assert_nothing_ran(shim: Shim) -> None:
    assert shim.runs() == [], "a run was started"
    assert recorded(shim.record_base) == [], "the deploy command ran"


@pytest.mark.parametrize(("path", "kwargs", "status", "fragment"), [case[1:] for case in MATRIX], ids=[case[0] for case in MATRIX])
def test_bad_or_ignored_request_starts_nothing(gate, path, kwargs, status, fragment):
    kwargs = dict(kwargs)
    payload = kwargs.pop("payload", PUSH)
    response = gate.post(path, payload, **kwargs)
    assert response.status == status, response
    assert fragment in response.body.decode(), response
    time.sleep(gate.config["debounce_seconds"] + 0.05)  # a queued run is recorded at once; give the worker its chance too
    assert_nothing_ran(gate)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/hooks/github"), ("PUT", "/hooks/github"), ("GET", "/deploy-all-changed"), ("DELETE", "/redeploy-and-update/web")]
)
def test_wrong_method_is_405_and_starts_nothing(gate, method, path):
    body = json.dumps(PUSH).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Event": "push", "X-GitHub-Delivery": "m-1"}
    response = request(gate.url + path, data=None if method == "GET" else body, headers=headers, method=method)
    assert response.status == 405, response
    assert_nothing_ran(gate)


def test_rejected_deliveries_are_not_remembered(gate):
    """A delivery rejected for its signature can be redelivered once the secret is fixed (same id)."""
    first = gate.post("/hooks/github", github_push("feature"), delivery="fixed-later", secret=b"old")
    assert first.status == 401
    again = gate.post("/hooks/github", github_push("feature"), delivery="fixed-later")
    assert again.status == 200 and again.json["status"] == "ignored", again
    assert_nothing_ran(gate)


def test_good_push_runs_once_and_replays_do_not(gate, tmp_path):
    """The positive control of the matrix above: the same shim starts runs when it should."""
    response = gate.post("/hooks/github", github_push(after="a" * 40), delivery="push-1")
    assert response.status == 202, response
    assert response.elapsed < 0.5, f"answered in {response.elapsed:.3f}s"
    run_id = response.json["run_id"]
    run = gate.wait_run(run_id)
    assert run["status"] == "changed" and run["reconcile"] is True and run["delivery_ids"] == ["push-1"], run
    assert run["outcome"]["web"]["action"] == "deployed", run
    assert run["requested_commit"] == "a" * 40 and run["commit"] == "f" * 40
    assert recorded(gate.record_base) == [["-e", "podops_trigger=webhook", "-e", f"podops_run_id={run_id}"]]
    assert "recorder: -e podops_trigger=webhook" in run["log"]

    replay = gate.post("/hooks/github", github_push(after="a" * 40), delivery="push-1")
    assert replay.status == 200 and replay.json["status"] == "duplicate", replay
    time.sleep(0.5)
    assert len(gate.runs()) == 1 and len(recorded(gate.record_base)) == 1

    # the replay guard survives a restart of the shim
    assert gate.stop() == 0
    gate.start()
    replay = gate.post("/hooks/github", github_push(after="a" * 40), delivery="push-1")
    assert replay.status == 200 and replay.json["status"] == "duplicate", replay
    time.sleep(0.5)
    assert len(gate.runs()) == 1 and len(recorded(gate.record_base)) == 1


def test_other_providers_and_seed_routes_start_the_right_commands(gate):
    before = len(recorded(gate.record_base))
    gitea = gate.post("/hooks/gitea", github_push(), provider="gitea", event="push")
    assert gitea.status == 202, gitea
    gate.wait_run(gitea.json["run_id"])
    gitlab = gate.post("/hooks/gitlab", {"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "b" * 40}, provider="gitlab", event="Push Hook")
    assert gitlab.status == 202, gitlab
    gate.wait_run(gitlab.json["run_id"])
    seed = gate.post("/redeploy-and-update/web", {"action": "published"}, event=None, delivery=None)
    assert seed.status == 202 and seed.json["services"] == ["web"], seed
    run = gate.wait_run(seed.json["run_id"])
    assert run["reconcile"] is False and run["services"] == ["web"]
    package = gate.post(
        "/hooks/github",
        {"action": "published", "package": {"name": "app", "namespace": "team", "package_version": {"package_url": "ghcr.io/team/app:latest"}}},
        event="package",
    )
    assert package.status == 202 and package.json["services"] == ["web"], package
    gate.wait_run(package.json["run_id"])
    forgejo = gate.post("/hooks/forgejo", {"action": "created", "package": {"name": "app", "owner": {"login": "team"}}}, provider="forgejo", event="package")
    assert forgejo.status == 202 and forgejo.json["services"] == ["web"], forgejo
    gate.wait_run(forgejo.json["run_id"])
    calls = recorded(gate.record_base)[before:]
    assert [call[-1].split("=")[0] for call in calls] == ["podops_run_id"] * 2 + ["podops_service"] * 3, calls
    assert [call[-1] for call in calls[2:]] == ["podops_service=web"] * 3
    assert all(call[:2] == ["-e", "podops_trigger=webhook"] for call in calls)


def test_status_page_answers_loopback_without_token(gate):
    page = request(gate.url + "/")
    assert page.status == 200 and 'data-service="web"' in page.body.decode()
    assert request(gate.url + "/metrics").status == 200


def run_config_error(tmp_path: Path, text: str, secret_mode: int = 0o600, secret: bytes = SECRET) -> subprocess.CompletedProcess:
    write_secret(tmp_path / "secret", secret, secret_mode)
    (tmp_path / "cfg.yml").write_text(text.replace("SECRET", str(tmp_path / "secret")))
    env = dict(os.environ, PYTHONPATH=str(SHIM_DIR))
    env.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "podops_webhook", "--config", str(tmp_path / "cfg.yml")], capture_output=True, text=True, env=env, timeout=30, check=False
    )


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("secret_file: /nonexistent/secret\nlisten: 127.0.0.1:1\n", 0o600, "does not exist"),
        ("secret_file: SECRET\nlisten: [127.0.0.1\n", 0o600, "is not valid YAML (line 3, column 1)"),
        ("secret_file: SECRET\nlistn: 127.0.0.1:1\n", 0o600, "unknown setting 'listn' (did you mean 'listen'?)"),
        ("secret_file: SECRET\n", 0o644, "readable by other users (mode 0644); run: chmod 600"),
        ("listen: 127.0.0.1:1\n", 0o600, "secret_file is not set"),
        ("secret_file: webhook-secret\n", 0o600, "CREDENTIALS_DIRECTORY is not set"),
        ("secret_file: SECRET\nlisten: nowhere\n", 0o600, "is not HOST:PORT"),
        ("secret_file: SECRET\nreconcile_command: podops-pull --now\n", 0o600, "reconcile_command must be a list"),
    ],
    ids=["missing-secret", "bad-yaml", "unknown-key", "world-readable-secret", "no-secret", "credential-without-systemd", "bad-listen", "command-string"],
)
def test_config_errors_exit_non_zero_with_a_clear_message(tmp_path, text, mode, message):
    proc = run_config_error(tmp_path, textwrap.dedent(text), secret_mode=mode)
    assert proc.returncode == 2, proc
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_secret_comes_from_systemd_credentials(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    write_secret(creds / "webhook-secret", SECRET)
    (tmp_path / "cfg.yml").write_text(f"secret_file: webhook-secret\nrepo_dir: {tmp_path}\ncollections_path: {SHIM_DIR.parents[2] / '.work/collections'}\n")
    env = dict(os.environ, PYTHONPATH=str(SHIM_DIR), CREDENTIALS_DIRECTORY=str(creds))
    proc = subprocess.run(
        [sys.executable, "-m", "podops_webhook", "--config", str(tmp_path / "cfg.yml"), "--check-config"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0 and "is valid" in proc.stdout, proc


def test_ab_health_follows_the_marker_and_sigterm_drains(tmp_path):
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "state"
    shim = Shim(tmp_path / "shim", reconcile_command=recorder(tmp_path, state, seconds=3), repo_dir=repo, state_dir=state, debounce_seconds=0)
    shim.config["listen"] = {"a": f"127.0.0.1:{shim.port}", "b": "127.0.0.1:1"}
    shim.config_file.write_text(json.dumps(shim.config))
    shim.start("--slot", "a")
    try:
        health = shim.get("/health")
        assert health.status == 200 and health.json == {"marker": "absent", "slot": "a", "status": "ok"}
        marker = state / "ab" / "webhook.json"
        marker.parent.mkdir(parents=True)
        marker.write_text('{"active": "b"}')
        health = shim.get("/health")
        assert health.status == 503 and health.json["status"] == "standby", health
        marker.write_text("{broken")
        assert shim.get("/health").status == 503
        marker.write_text('{"active": "a"}')
        assert shim.get("/health").status == 200

        first = shim.post("/hooks/github", github_push())
        assert first.status == 202
        deadline = time.monotonic() + 10
        while shim.get("/api/status").json["running"] != first.json["run_id"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        queued = shim.post("/hooks/github", github_push())
        assert queued.status == 202 and queued.json["run_id"] != first.json["run_id"]

        shim.proc.send_signal(15)
        time.sleep(0.3)
        health = shim.get("/health")
        assert health.status == 503 and health.json["status"] == "draining", health
        refused = shim.post("/hooks/github", github_push())
        assert refused.status == 503, refused
        assert shim.proc.wait(timeout=20) == 0, shim.log()
    finally:
        shim.stop()
    # the run in progress finished and was recorded; the queued one was handed over (not half-run, not lost)
    assert len(recorded(tmp_path)) == 1
    shim.start("--slot", "a")
    try:
        runs = {run["id"]: run for run in shim.runs()}
        assert runs[first.json["run_id"]]["status"] == "changed", runs
        # the next instance (here: this slot started again; in an A/B switch: the other slot) adopts and runs it
        deadline = time.monotonic() + 20
        while {run["id"]: run for run in shim.runs()}[queued.json["run_id"]]["status"] != "changed":
            assert time.monotonic() < deadline, shim.runs()
            time.sleep(0.1)
        assert len(recorded(tmp_path)) == 2
    finally:
        assert shim.stop() == 0
