"""A broken service never takes a working one with it (issue 2, point 6)."""

from __future__ import annotations

from conftest import free_port, http_get, web_service


def _deploy_good(host, repo, ports):
    for name, port in ports.items():
        repo.add_web(name, port, f"{name} good")
    repo.commit("good")
    run = host.reconcile(repo)
    assert run.rc == 0, run.stdout + run.stderr
    return run


def test_missing_image_fails_that_service_only_and_is_retried(host, repo):
    ports = {"good": free_port(), "bad": free_port()}
    _deploy_good(host, repo, ports)
    bad_ids = host.ids("bad")

    repo.write("services/good/site/index.html", "good v2")
    repo.write("services/good/compose.yaml", web_service(ports["good"]).replace("interval: 30s", "interval: 31s"))
    repo.write("services/bad/compose.yaml", web_service(ports["bad"], image="localhost/podops-does-not-exist:1"))
    repo.commit("break bad")
    run = host.reconcile(repo)
    assert run.rc != 0, "a failed service fails the playbook"
    report = run.report
    assert report["result"] == "failed"
    assert report["services"]["good"]["action"] == "deployed"
    assert report["services"]["bad"]["action"] == "failed"
    assert "localhost/podops-does-not-exist:1" in report["services"]["bad"]["error"]
    assert host.ids("bad") == bad_ids, "nothing was stopped: the image is checked before"
    assert http_get(ports["bad"]) == "bad good"
    assert http_get(ports["good"]) == "good v2"
    assert "service(s) failed: bad" in run.first_failure()

    retry = host.reconcile(repo)
    assert retry.rc != 0
    assert retry.report["services"]["bad"]["reason"] == "retry"
    assert retry.report["services"]["good"]["action"] == "unchanged"

    repo.write("services/bad/compose.yaml", web_service(ports["bad"]))  # fixed: back to the good file
    repo.commit("fix bad")
    fixed = host.reconcile(repo)
    assert fixed.rc == 0, fixed.stdout
    assert fixed.report["services"]["bad"]["action"] == "unchanged", "the good version never stopped running"


def test_invalid_yaml_names_file_and_line(host, repo):
    ports = {"good": free_port(), "bad": free_port()}
    _deploy_good(host, repo, ports)
    bad_ids = host.ids("bad")
    repo.write("services/bad/compose.yaml", "services:\n  web:\n    image: [unclosed\n    ports: x\n")
    repo.commit("invalid yaml")
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["bad"]
    assert entry["action"] == "failed"
    assert "compose.yaml line" in entry["error"], entry["error"]
    assert host.ids("bad") == bad_ids
    assert http_get(ports["bad"]) == "bad good"
    assert run.report["services"]["good"]["action"] == "unchanged"


def test_exiting_container_is_rolled_back_to_the_snapshot(host, repo):
    ports = {"good": free_port(), "bad": free_port()}
    _deploy_good(host, repo, ports)
    # new content and a command that dies: the old content must come back, from the snapshot
    repo.write("services/bad/site/index.html", "bad v2 - never served")
    repo.write("services/bad/compose.yaml", web_service(ports["bad"], extra='    command: ["sh", "-c", "exit 3"]\n'))
    repo.write("services/good/site/index.html", "good v2")
    repo.write("services/good/compose.yaml", web_service(ports["good"]).replace("interval: 30s", "interval: 31s"))
    repo.commit("bad command")
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["bad"]
    assert entry["action"] == "rolled_back", entry
    assert "exited with code 3" in entry["error"]
    assert http_get(ports["bad"]) == "bad good", "the last good version, content included, is back"
    assert http_get(ports["good"]) == "good v2"
    (container,) = host.containers("bad")
    assert container["State"] == "running"
    assert container["Labels"]["io.podops.digest"] == entry["previous_digest"]

    retry = host.reconcile(repo)
    assert retry.report["services"]["bad"]["reason"] == "retry"
    assert retry.report["services"]["bad"]["action"] == "rolled_back"
    assert http_get(ports["bad"]) == "bad good"


def test_unhealthy_container_is_rolled_back(host, repo):
    ports = {"svc": free_port()}
    _deploy_good(host, repo, ports)
    xp = "x-podops:\n  health: {timeout: 4, samples: 2, interval: 0.3}\n"
    repo.write("services/svc/compose.yaml", web_service(ports["svc"], health='["CMD", "false"]', xpodops=xp))
    repo.commit("unhealthy")
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["svc"]
    assert entry["action"] == "rolled_back"
    assert "not healthy after 4s" in entry["error"]
    assert http_get(ports["svc"]) == "svc good"


def test_first_deploy_failure_leaves_nothing_running(host, repo):
    port = free_port()
    repo.write("services/new/compose.yaml", web_service(port, extra='    command: ["sh", "-c", "exit 1"]\n'))
    repo.write("services/new/site/index.html", "x")
    repo.commit()
    run = host.reconcile(repo)
    assert run.rc != 0
    entry = run.report["services"]["new"]
    assert entry["action"] == "failed"
    assert "no earlier version" in entry["error"]
    assert all(c["State"] != "running" for c in host.containers("new"))
