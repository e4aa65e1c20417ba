"""Real-world compose files deploy as they are (issue 13): interpolation as podman-compose does it,
profiles, jobs that other services wait for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import IMAGE, REPO_ROOT, free_port, http_get

sys.path.insert(0, str(REPO_ROOT / ".work" / "collections"))
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError  # noqa: E402
from ansible_collections.podops.gitops.plugins.module_utils._compose import interpolate, load_project  # noqa: E402

HEALTH = "x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n"
DOTENV = "SET=value\nEMPTY=\nFOO=foo\nERPNEXT_VERSION=v15.1.0\n"
CASES = [
    "${SET}",
    "$SET",
    "${UNSET}",
    "${SET:-default}",
    "${EMPTY:-default}",
    "${UNSET:-default}",
    "${SET-default}",
    "${EMPTY-default}",
    "${UNSET-default}",
    "${SET:?error}",
    "${EMPTY?error}",
    "${SET:+replacement}",
    "${EMPTY:+replacement}",
    "${UNSET:+replacement}",
    "${SET+replacement}",
    "${EMPTY+replacement}",
    "${UNSET+replacement}",
    "${UNSET:-${FOO}}",
    "${SET?$FOO}",
    "${UNSET:-${UNSET2:-default}}",
    "${UNSET:-${FOO:-default}}",
    "${SET:+${FOO}-x}",
    "frappe/erpnext:${CUSTOM_TAG:-$ERPNEXT_VERSION}",
    "$$VAR_NOT_INTERPOLATED_BY_COMPOSE",
    "price is $5",
    "${UNSET:-$$}",
    "${UNSET:-}",
    "$SET/$FOO_BAR/${FOO}_BAR",
]


def compose_config(folder, env) -> tuple[int, str, str]:
    proc = subprocess.run(
        ["podman-compose", "-f", "compose.yaml", "--env-file", ".env", "config"], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_interpolation_is_what_podman_compose_config_gives(tmp_path):
    (tmp_path / ".env").write_text(DOTENV)
    labels = {f"case{number}": text for number, text in enumerate(CASES)}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump({"services": {"app": {"image": IMAGE, "labels": labels}}}))
    env = {key: value for key, value in os.environ.items() if key not in ("SET", "EMPTY", "FOO", "UNSET", "UNSET2", "CUSTOM_TAG")}
    rc, out, err = compose_config(tmp_path, env)
    assert rc == 0, err
    theirs = yaml.safe_load(out)["services"]["app"]["labels"]
    variables = load_project(str(tmp_path), environ=env).variables(env)
    ours = {key: interpolate(text, variables) for key, text in labels.items()}
    assert ours == theirs
    assert ours["case22"] == "frappe/erpnext:v15.1.0"

    # Both refuse a required variable without a value.
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump({"services": {"app": {"image": "${UNSET:?set UNSET}"}}}))
    rc, _out, err = compose_config(tmp_path, env)
    assert rc != 0 and "required variable UNSET is missing a value" in err
    with pytest.raises(PodopsError, match="required variable UNSET is missing a value: set UNSET"):
        load_project(str(tmp_path), environ=env).images(env)


def test_nested_default_picks_the_image_podman_compose_runs(host, repo):
    port = free_port()
    repo.write("services/erp/.env", "DEMO_VERSION=1\n")
    repo.write(
        "services/erp/compose.yaml",
        HEALTH + f'services:\n  web:\n    image: "localhost/podops-demo:${{CUSTOM_TAG:-$DEMO_VERSION}}"\n    ports: ["127.0.0.1:{port}:8080"]\n',
    )
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert http_get(port).strip() == "podops demo 1"
    (container,) = host.containers("erp")
    assert container["Image"] == IMAGE


def test_a_job_other_services_wait_for_may_exit_zero(host, repo):
    port = free_port()
    repo.write(
        "services/app/compose.yaml",
        HEALTH
        + f"""services:
  migrate:
    image: {IMAGE}
    command: ["sh", "-c", "echo migrated"]
  web:
    image: {IMAGE}
    ports: ["127.0.0.1:{port}:8080"]
    depends_on:
      migrate: {{condition: service_completed_successfully}}
""",
    )
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert run.report["services"]["app"]["action"] == "deployed"
    assert http_get(port).strip() == "podops demo 1"
    states = {c["Labels"]["com.docker.compose.service"]: (c["State"], c["ExitCode"]) for c in host.containers("app")}
    assert states == {"migrate": ("exited", 0), "web": ("running", 0)}

    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed, "a finished job is not drift"
    assert again.report["services"]["app"]["action"] == "unchanged"


def test_a_container_that_exits_zero_unexpectedly_names_the_oneshot_setting(host, repo):
    repo.write("services/app/compose.yaml", HEALTH + f'services:\n  once:\n    image: {IMAGE}\n    command: ["sh", "-c", "echo done"]\n')
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc != 0
    error = run.report["services"]["app"]["error"]
    assert "exited with code 0" in error and "x-podops.oneshot" in error, error


def test_only_active_profiles_count(host, repo):
    web_port, metrics_port = free_port(), free_port()
    compose = """services:
  web:
    image: {image}
    ports: ["127.0.0.1:{web_port}:8080"]
  debug:
    image: localhost/podops-does-not-exist:1
    profiles: [debug]
    env_file: ../../secrets/debug-only.env
  metrics:
    image: {image}
    profiles: [monitoring]
    ports: ["127.0.0.1:{metrics_port}:8080"]
"""
    repo.write("services/stack/compose.yaml", HEALTH + compose.format(image=IMAGE, web_port=web_port, metrics_port=metrics_port))
    repo.write("services/stack/.env", "COMPOSE_PROFILES=monitoring\n")
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc == 0, run
    running = sorted(c["Labels"]["com.docker.compose.service"] for c in host.containers("stack"))
    assert running == ["metrics", "web"], "debug's image is never pulled nor its env file required"
    assert http_get(metrics_port).strip() == "podops demo 1"

    # x-podops.profiles chooses the same, passed to podman-compose as --profile.
    xpodops = "x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n  profiles: [monitoring]\n"
    repo.write("services/stack/compose.yaml", xpodops + compose.format(image=IMAGE, web_port=web_port, metrics_port=metrics_port))
    repo.write("services/stack/.env", "# no profiles here\n")
    repo.commit("profiles from x-podops")
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert sorted(c["Labels"]["com.docker.compose.service"] for c in host.containers("stack")) == ["metrics", "web"]

    # No profile active: the metrics container goes, as the repo says.
    repo.write("services/stack/compose.yaml", HEALTH + compose.format(image=IMAGE, web_port=web_port, metrics_port=metrics_port))
    repo.commit("no profiles")
    run = host.reconcile(repo)
    assert run.rc == 0, run
    assert [c["Labels"]["com.docker.compose.service"] for c in host.containers("stack")] == ["web"]
    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed


def test_missing_files_fail_the_plan_all_named_at_once(host, repo, tmp_path):
    secret = tmp_path / "host-secrets" / "token"
    repo.write(
        "services/app/compose.yaml",
        HEALTH + f"services:\n  web:\n    image: {IMAGE}\n    env_file: ../../secrets/app.env\n    secrets: [token]\nsecrets:\n  token:\n    file: {secret}\n",
    )
    repo.commit()
    check = host.reconcile(repo, check=True)
    assert check.report["services"]["app"]["action"] == "failed", "check mode does not promise a deploy that cannot work"
    run = host.reconcile(repo)
    assert run.rc != 0
    error = run.report["services"]["app"]["error"]
    assert error.startswith("2 files the compose file reads do not exist: ../../secrets/app.env ("), error
    assert error.count(str(secret)) == 1, error
    assert host.containers("app") == []


def test_a_dependency_that_never_becomes_healthy_is_rolled_back(host, repo):
    """depends_on: condition: service_healthy on a dependency whose healthcheck never passes. podman 4.3 ignores the
    condition (podops' health gate fails the service); podman >= 4.6 makes podman-compose wait inside `up` with no
    limit of its own (podops' `up` time limit ends it). Either way: the run ends, the service is rolled back to the
    version that worked, the report is written and the next run is not blocked."""
    port = free_port()

    def compose(check: str) -> str:
        return (
            "x-podops:\n  health: {timeout: 15, samples: 2, interval: 0.3}\n  timeouts: {up: 25}\n"
            f"services:\n"
            f"  db:\n    image: {IMAGE}\n"
            f'    healthcheck: {{test: ["CMD", "{check}"], interval: 1s, retries: 1}}\n'
            f'  web:\n    image: {IMAGE}\n    ports: ["127.0.0.1:{port}:8080"]\n'
            "    depends_on:\n      db: {condition: service_healthy}\n"
        )

    repo.write("services/app/compose.yaml", compose("true"))
    repo.commit("healthy db")
    first = host.reconcile(repo)
    assert first.rc == 0, first
    assert first.report["services"]["app"]["action"] == "deployed"
    assert http_get(port).strip() == "podops demo 1"

    repo.write("services/app/compose.yaml", compose("false"))
    repo.commit("db never healthy")
    broken = host.reconcile(repo, timeout=300)
    assert broken.rc != 0
    entry = broken.report["services"]["app"]
    assert entry["action"] == "rolled_back", entry
    assert http_get(port).strip() == "podops demo 1", "the version that worked serves again"

    again = host.reconcile(repo, timeout=300)
    assert again.report["services"]["app"]["action"] == "rolled_back", "the host lock was released: the next run ran"
