"""Shapes of real env repos: folder renames, include/extends/override files, clashing names."""

from __future__ import annotations

import subprocess

from conftest import free_port, http_get, web_service

HEALTH = "x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n"


def git_mv(repo, old: str, new: str) -> None:
    subprocess.run(["git", "-C", str(repo.path), "mv", old, new], check=True)


def test_renamed_folder_keeps_serving_with_prune(host, repo):
    named_port, plain_port = free_port(), free_port()
    repo.write("services/nextcloud/compose.yaml", "name: cloud\n" + web_service(named_port))
    repo.write("services/nextcloud/site/index.html", "cloud")
    repo.add_web("traefik", plain_port, "proxy")
    repo.commit()
    assert host.reconcile(repo, podops_prune=True).rc == 0

    git_mv(repo, "services/nextcloud", "services/cloud")
    git_mv(repo, "services/traefik", "services/traefik2")
    repo.commit("rename folders")
    run = host.reconcile(repo, podops_prune=True)
    assert run.rc == 0, run
    services = run.report["services"]
    assert (services["nextcloud"]["action"], services["nextcloud"]["reason"]) == ("orphaned", "renamed"), "same project: never pruned"
    assert services["traefik"]["action"] == "pruned", "the old project is pruned first, so its port is free"
    assert services["traefik2"]["action"] == "deployed"
    assert http_get(named_port) == "cloud"
    assert http_get(plain_port) == "proxy"
    (container,) = host.containers("cloud")
    assert container["State"] == "running"

    again = host.reconcile(repo, podops_prune=True)
    assert again.rc == 0 and not again.changed, again
    assert set(again.report["services"]) == {"cloud", "traefik2"}


def test_include_extends_and_override_files_are_applied(host, repo):
    port, extended_port, override_port = free_port(), free_port(), free_port()
    repo.write(
        "services/stack/compose.yaml",
        HEALTH + f'include: [db.yaml]\nservices:\n  web:\n    image: localhost/podops-demo:1\n    ports: ["127.0.0.1:{port}:8080"]\n    depends_on: [db]\n',
    )
    repo.write("services/stack/db.yaml", "services:\n  db:\n    image: localhost/podops-demo:1\n")
    repo.write("services/common.yml", "services:\n  base:\n    image: localhost/podops-demo:1\n    environment: {FROM_BASE: 'yes'}\n")
    repo.write(
        "services/ext/compose.yaml",
        HEALTH + "services:\n  web:\n    extends: {file: ../common.yml, service: base}\n"
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; echo $$FROM_BASE > /www/index.html; httpd -f -p 8080 -h /www & wait"]\n'
        f'    ports: ["127.0.0.1:{extended_port}:8080"]\n',
    )
    repo.write("services/over/docker-compose.yml", HEALTH + "services:\n  web:\n    image: localhost/podops-demo:1\n")
    repo.write("services/over/docker-compose.override.yml", f'services:\n  web:\n    ports: ["127.0.0.1:{override_port}:8080"]\n')
    repo.commit()
    first = host.reconcile(repo)
    assert first.rc == 0, first
    stack = host.containers("stack")
    assert sorted(c["Labels"]["com.docker.compose.service"] for c in stack) == ["db", "web"]
    assert all(c["Labels"]["io.podops.digest"] == first.report["services"]["stack"]["digest"] for c in stack), "included services are labelled"
    assert http_get(extended_port).strip() == "yes"
    assert http_get(override_port).strip() == "podops demo 1", "the standard override file is applied"

    again = host.reconcile(repo)
    assert again.rc == 0 and not again.changed, again

    repo.write("services/common.yml", "services:\n  base:\n    image: localhost/podops-demo:1\n    environment: {FROM_BASE: 'changed'}\n")
    repo.commit("base changed")
    changed = host.reconcile(repo)
    assert changed.report["services"]["ext"]["changed_files"] == ["../common.yml"]
    assert http_get(extended_port).strip() == "changed"


def test_clashing_container_names_fail_both_and_stop_nothing(host, repo):
    compose = "services:\n  db:\n    image: localhost/podops-demo:1\n    container_name: {name}\n"
    name = f"{host.prefix}postgres"
    repo.write("services/gitea/compose.yaml", compose.format(name=name))
    repo.commit()
    assert host.reconcile(repo).rc == 0
    repo.write("services/nextcloud/compose.yaml", compose.format(name=name))
    repo.commit("copy")
    run = host.reconcile(repo)
    assert run.rc != 0
    for service in ("gitea", "nextcloud"):
        assert "all declare container_name" in run.report["services"][service]["error"]
    (container,) = host.containers("gitea")
    assert container["State"] == "running", "the working service is left alone"
