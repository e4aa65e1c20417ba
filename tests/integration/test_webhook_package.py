"""A published image reaches the service through the shim, for real: v2 pushed to a real registry on
loopback under the same tag, then the three ``registry_package`` events one multi-arch push sends ->
one run of ``podops.gitops.redeploy`` for the service whose image names the package -> v2 served, the
other service untouched."""

from __future__ import annotations

import textwrap

from conftest import EnvRepo, Host, free_port, http_get
from webhook_helpers import Shim, github_push


def image_service(image: str, port: int) -> str:
    return textwrap.dedent(
        f"""\
        x-podops:
          health: {{timeout: 20, samples: 2, interval: 0.3}}
        services:
          web:
            image: {image}
            ports: ["127.0.0.1:{port}:8080"]
        """
    )


def test_package_published_redeploys_the_service_using_it(registry, tmp_path):
    host = Host(tmp_path)
    host.env["CONTAINERS_REGISTRIES_CONF"] = str(registry.registries_conf)
    repo = EnvRepo(tmp_path / "env-repo")
    name = f"app-{host.prefix.strip('-')}"
    ref = registry.push("localhost/podops-demo:1", f"{name}:latest")
    app_port, other_port = free_port(), free_port()
    repo.write("services/app/compose.yaml", image_service(ref, app_port))
    repo.write("services/other/compose.yaml", image_service("localhost/podops-demo:1", other_port))
    commit = repo.commit("app and other")
    variables = ["-e", f"podops_repo_dir={repo.path}", "-e", f"podops_state_dir={host.state_dir}", "-e", f"podops_project_prefix={host.prefix}"]
    shim = Shim(
        tmp_path / "shim",
        reconcile_command=["ansible-playbook", "podops.gitops.reconcile", *variables],
        redeploy_command=["ansible-playbook", "podops.gitops.redeploy", *variables],
        repo_dir=repo.path,
        state_dir=host.state_dir,
        project_prefix=host.prefix,
        environment={"CONTAINERS_REGISTRIES_CONF": str(registry.registries_conf)},
        debounce_seconds=0.5,
    )
    shim.start()
    try:
        first = shim.post("/hooks/github", github_push(after=commit))
        assert first.status == 202, first
        run = shim.wait_run(first.json["run_id"])
        assert run["status"] == "changed", run["log"][-3000:]
        assert http_get(app_port).strip() == "podops demo 1"
        other_ids = host.ids("other")

        registry.push("localhost/podops-demo:2", f"{name}:latest")  # v2 published under the same tag
        event = {
            "action": "published",
            "registry_package": {
                "name": name,
                "namespace": "team",
                "package_type": "CONTAINER",
                "package_version": {"package_url": f"{ref}"},
            },
        }
        answers = [shim.post("/hooks/github", event, event="registry_package") for _manifest in range(3)]  # one per manifest
        assert [a.status for a in answers] == [202] * 3, answers
        assert len({a.json["run_id"] for a in answers}) == 1 and answers[0].json["services"] == ["app"]
        run = shim.wait_run(answers[0].json["run_id"])
        assert run["status"] == "changed", run["log"][-3000:]
        assert run["reconcile"] is False and run["services"] == ["app"] and run["deliveries"] == 3
        assert run["outcome"]["app"]["action"] == "deployed" and run["outcome"]["app"]["reason"] == "image", run["outcome"]
        assert "podops.gitops.redeploy" in run["log"] and "podops_service=app" in run["log"]
        assert http_get(app_port).strip() == "podops demo 2"
        assert host.ids("other") == other_ids, "the other service was restarted"
        assert len(shim.runs()) == 2

        unused = shim.post("/hooks/github", {**event, "registry_package": {"name": "nothing-uses-this", "namespace": "team"}}, event="registry_package")
        assert unused.status == 200 and "no service uses" in unused.json["reason"]
        assert len(shim.runs()) == 2
    finally:
        rc = shim.stop()
        host.cleanup()
    assert rc == 0, shim.log()[-3000:]
