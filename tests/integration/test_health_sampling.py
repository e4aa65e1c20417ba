"""The health gate on real podman: a sampling round lists only the containers being deployed (issue 19, item 2).

A host's other containers must not make a deploy slower: the gate's rounds list the projects it waits on, by label
and then by container ID, never the whole host.
"""

from __future__ import annotations

import json
import shlex

from conftest import IMAGE, free_port, http_get, sh


def logging_podman(tmp_path, log):
    """A podman that writes each of its argv (as JSON) to ``log`` and then runs the real podman."""
    real = sh("sh", "-c", "command -v podman").stdout.strip()
    shim = tmp_path / "bin" / "podman"
    shim.parent.mkdir()
    shim.write_text(
        "#!/usr/bin/python3\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}] + sys.argv[1:])\n"
    )
    shim.chmod(0o755)
    return shim


def test_health_rounds_list_only_the_services_being_deployed(host, repo, tmp_path):
    # Containers this test starts that podops is not deploying: a busy host's other work (cleaned up by prefix).
    bystanders = [
        sh("podman", "run", "-d", "--name", f"{host.prefix}bystander{n}", "--label", f"io.podops.prefix={host.prefix}", IMAGE, "sleep", "600").stdout.strip()
        for n in range(3)
    ]
    ports = {name: free_port() for name in ("alpha", "beta", "gamma")}
    for name, port in ports.items():
        repo.add_web(name, port, f"{name} v1")
    repo.commit()
    log = tmp_path / "podman-calls.jsonl"

    run = host.reconcile(repo, podops_podman_executable=str(logging_podman(tmp_path, log)), podops_parallel=3)

    assert run.rc == 0, run
    assert {name: http_get(port) for name, port in ports.items()} == {name: f"{name} v1" for name in ports}
    assert {name: s["action"] for name, s in run.report["services"].items()} == dict.fromkeys(ports, "deployed")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    listings = [call for call in calls if call[:4] == ["ps", "-a", "--format", "json"]]
    unfiltered = [call for call in listings if len(call) == 4]
    # the plan lists the host once (orphans, drift); every listing after that names what it lists
    assert len(unfiltered) == 1, "\n".join(map(shlex.join, listings))
    by_id = [call for call in listings if any(arg.startswith("id=") for arg in call)]
    assert by_id, "the gate's later rounds list the containers it waits on by ID"
    for call in by_id:
        assert not any(arg == f"id={bystander}" for arg in call for bystander in bystanders), shlex.join(call)
    # health was sampled twice per service (x-podops.health.samples: 2), each a healthcheck run of its own container
    assert len([call for call in calls if call[:2] == ["healthcheck", "run"]]) >= 2 * len(ports)
