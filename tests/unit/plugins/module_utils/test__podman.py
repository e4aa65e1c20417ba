# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_podman: podman-compose's version (read once, cached by executable) and one shared ``podman ps`` per
sampling round, against fake runners that answer with captured outputs."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._podman import Podman, PodmanCompose, compose_version, removal_rounds

# ``podman-compose --version`` as printed on a test host (podman-compose 1.6.0, podman 4.3.1).
COMPOSE_1_6_0 = "podman-compose version 1.6.0\npodman version 4.3.1\n"
# Debian 12's podman-compose 1.0.3: podman's version first, the tool named "podman-composer".
# ``podman container inspect --format json`` of a project a <- b <- c that podman-compose 1.6.0 created (podman
# 4.3.1), trimmed to the fields podops reads. c requires b and a: podman-compose passes the transitive ones too.
INSPECT_CHAIN_4_3_1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "podman_container_inspect_4.3.1_chain.json")
COMPOSE_1_0_3 = "using podman version: 4.3.1\npodman-composer version  1.0.3\npodman --version \npodman version 4.3.1\nexit code: 0"


class FakeRunner:
    """The Runner contract with canned answers: ``answers`` maps an argv's first words after the executable to (rc, out, err)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, cwd=None, timeout=None):
        self.calls.append(list(argv))
        return self.answers[argv[1]]


@pytest.fixture
def executable(tmp_path):
    """``executable(name)``: a stand-in program file (never run: the runner is fake)."""

    def make(name):
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
        return str(path)

    return make


# --- compose_version -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (COMPOSE_1_6_0, (1, 6, 0)),
        (COMPOSE_1_0_3, (1, 0, 3)),
        ("podman-compose version 1.2\n", (1, 2, 0)),
        ("podman version 4.3.1\n", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_compose_version(text, version):
    assert compose_version(text) == version


# --- PodmanCompose.check_version and its cache ---------------------------------------------------------------------


def test_compose_version_is_read_once_and_cached(tmp_path, executable):
    compose_exe = executable("podman-compose")
    cache = str(tmp_path / "state" / "tools.json")
    (tmp_path / "state").mkdir()
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})

    first = PodmanCompose(runner, compose_exe)
    assert first.check_version(cache) == (1, 6, 0)
    assert first.check_version(cache) == (1, 6, 0)
    second = PodmanCompose(runner, compose_exe)
    assert second.check_version(cache) == (1, 6, 0)

    assert runner.calls == [[compose_exe, "--version"]]
    info = os.stat(compose_exe)
    with open(cache, encoding="utf-8") as handle:
        assert json.load(handle) == {f"{os.path.realpath(compose_exe)}:{info.st_size}:{info.st_mtime_ns}": [1, 6, 0]}


def test_compose_version_cache_is_ignored_when_the_executable_changes(tmp_path, executable):
    compose_exe = executable("podman-compose")
    cache = str(tmp_path / "tools.json")
    PodmanCompose(FakeRunner({"--version": (0, COMPOSE_1_6_0, "")}), compose_exe).check_version(cache)
    info = os.stat(compose_exe)
    os.utime(compose_exe, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))  # pip installed another version
    runner = FakeRunner({"--version": (0, "podman-compose version 1.7.0\npodman version 4.3.1\n", "")})

    assert PodmanCompose(runner, compose_exe).check_version(cache) == (1, 7, 0)
    assert runner.calls == [[compose_exe, "--version"]]
    with open(cache, encoding="utf-8") as handle:
        assert list(json.load(handle).values()) == [[1, 7, 0]]


def test_podman_version_is_cached_beside_podman_composes_until_podman_is_replaced(tmp_path, executable):
    """Every run checked ``podman --version`` (a podman start, ~0.05 s of a no-op): it is kept in the same
    tools.json as podman-compose's, by executable, and asked again once podman is another file."""
    podman_exe, compose_exe = executable("podman"), executable("podman-compose")
    cache = str(tmp_path / "tools.json")
    PodmanCompose(FakeRunner({"--version": (0, COMPOSE_1_6_0, "")}), compose_exe).check_version(cache)
    runner = FakeRunner({"--version": (0, "podman version 4.3.1\n", "")})

    assert Podman(runner, podman_exe).check_version(cache) == (4, 3, 1)
    assert Podman(runner, podman_exe).check_version(cache) == (4, 3, 1)
    assert runner.calls == [[podman_exe, "--version"]]
    with open(cache, encoding="utf-8") as handle:
        assert sorted(json.load(handle).values()) == [[1, 6, 0], [4, 3, 1]]  # podman-compose's entry is kept

    info = os.stat(podman_exe)
    os.utime(podman_exe, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))  # the distribution upgraded podman
    upgraded = FakeRunner({"--version": (0, "podman version 5.4.2\n", "")})
    assert Podman(upgraded, podman_exe).check_version(cache) == (5, 4, 2)
    with open(cache, encoding="utf-8") as handle:
        assert sorted(json.load(handle).values()) == [[1, 6, 0], [5, 4, 2]]  # the old podman's entry is gone


def test_a_too_old_podman_is_refused_and_not_cached(tmp_path, executable):
    cache = tmp_path / "tools.json"
    runner = FakeRunner({"--version": (0, "podman version 3.4.4\n", "")})

    with pytest.raises(PodopsError, match=r"podman 3\.4\.4 is too old"):
        Podman(runner, executable("podman")).check_version(str(cache))
    assert not cache.exists()


def test_compose_version_without_cache_file_runs_the_tool(executable):
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})
    compose = PodmanCompose(runner, executable("podman-compose"))

    assert compose.check_version() == (1, 6, 0)
    assert compose.check_version() == (1, 6, 0)
    assert len(runner.calls) == 1


@pytest.mark.parametrize("cached", [[1, 0, 3], "1.6.0", [], ["1", "6"]])
def test_compose_version_cache_with_an_unusable_entry_is_ignored(tmp_path, executable, cached):
    compose_exe = executable("podman-compose")
    info = os.stat(compose_exe)
    cache = tmp_path / "tools.json"
    cache.write_text(json.dumps({f"{os.path.realpath(compose_exe)}:{info.st_size}:{info.st_mtime_ns}": cached}))
    runner = FakeRunner({"--version": (0, COMPOSE_1_6_0, "")})

    assert PodmanCompose(runner, compose_exe).check_version(str(cache)) == (1, 6, 0)
    assert len(runner.calls) == 1


def test_compose_1_0_3_is_too_old_and_not_cached(tmp_path, executable):
    cache = tmp_path / "tools.json"
    compose = PodmanCompose(FakeRunner({"--version": (0, COMPOSE_1_0_3, "")}), executable("podman-compose"))

    with pytest.raises(PodopsError) as err:
        compose.check_version(str(cache))

    assert str(err.value) == (
        "podman-compose 1.0.3 is too old: podops needs >= 1.1.0 (long-form env_file, depends_on conditions). "
        "Install a newer one: pip install 'podman-compose==1.6.0'."
    )
    assert not cache.exists()


def test_compose_version_that_fails(executable):
    compose_exe = executable("podman-compose")
    compose = PodmanCompose(
        FakeRunner({"--version": (1, "", "Traceback (most recent call last):\nModuleNotFoundError: No module named 'yaml'\n")}), compose_exe
    )

    with pytest.raises(PodopsError) as err:
        compose.check_version()

    assert str(err.value) == f"'{compose_exe} --version' failed: Traceback (most recent call last):\nModuleNotFoundError: No module named 'yaml'"


# --- Podman.project_containers ---------------------------------------------------------------------------------


class FakePs:
    """``podman ps -a --format json`` over a host's containers, honouring ``--filter label=K=V`` (all must match) and
    ``--filter id=X`` (any may match), as podman 4.3 does. Every other argv fails the test."""

    def __init__(self, entries):
        self.entries = entries
        self.calls = []

    def __call__(self, argv, cwd=None, timeout=None):
        assert argv[1:5] == ["ps", "-a", "--format", "json"], argv
        self.calls.append(list(argv))
        filters = [argv[i + 1] for i in range(5, len(argv), 2)]
        labels = [f.split("=", 1)[1] for f in filters if f.startswith("label=")]
        ids = [f.split("=", 1)[1] for f in filters if f.startswith("id=")]
        found = [
            entry
            for entry in self.entries
            if all(entry["Labels"].get(label.split("=", 1)[0]) == label.split("=", 1)[1] for label in labels) and (not ids or entry["Id"] in ids)
        ]
        return 0, json.dumps(found), ""

    def filters(self, call):
        return call[5:]


def host_of(podman_ps_entries, projects, others=100):
    """A host running one container of each of ``projects`` (what is being deployed) and ``others`` more."""
    template = podman_ps_entries[1]
    entries = []
    for number, project in enumerate(list(projects) + [f"bystander{n}" for n in range(others)]):
        labels = dict(template["Labels"], **{"io.podman.compose.project": project})
        entries.append(dict(template, Id=f"{number:04d}" + template["Id"][4:], Names=[f"{project}_web_1"], Labels=labels))
    return entries


def test_sampling_rounds_list_only_the_projects_being_waited_on(podman_ps_entries, executable):
    ps = FakePs(host_of(podman_ps_entries, ["t1web", "t1db"]))
    podman = Podman(ps, executable("podman"))
    project_filter = ["--filter", "label=io.podman.compose.project=t1web"]

    with podman.watching("t1web"), podman.watching("t1db"):
        first = podman.project_containers("t1web", not_before=time.monotonic())
        podman.project_containers("t1db", not_before=time.monotonic())
        assert [c.name for c in first] == ["t1web_web_1"]
        # the first sample of a project lists it by its label: its containers' IDs are not known before
        assert [ps.filters(call) for call in ps.calls] == [project_filter, ["--filter", "label=io.podman.compose.project=t1db"]]

        round_started = time.monotonic()
        web = podman.project_containers("t1web", not_before=round_started)
        db = podman.project_containers("t1db", not_before=round_started)  # a parallel deploy in the same round

        assert [c.name for c in web] == ["t1web_web_1"]
        assert [c.name for c in db] == ["t1db_web_1"]
        # one ps for both, of their containers only: none of the 100 other containers is listed
        assert len(ps.calls) == 3
        assert sorted(ps.filters(ps.calls[2])) == sorted(["--filter", f"id={first[0].id}", "--filter", f"id={db[0].id}"])

        podman.project_containers("t1web", not_before=time.monotonic() + 1)  # the next round
        assert len(ps.calls) == 4

    # no longer waited on: a ps of that project, never one of the host
    assert [c.name for c in podman.project_containers("t1web", not_before=time.monotonic())] == ["t1web_web_1"]
    assert ps.filters(ps.calls[-1]) == project_filter
    assert all(ps.filters(call) for call in ps.calls)


def test_a_watched_project_whose_containers_changed_is_listed_again(podman_ps_entries, executable):
    entries = host_of(podman_ps_entries, ["t1web"])
    ps = FakePs(entries)
    podman = Podman(ps, executable("podman"))
    project_filter = ["--filter", "label=io.podman.compose.project=t1web"]

    with podman.watching("t1web"):
        podman.project_containers("t1web", not_before=time.monotonic())
        second = dict(entries[0], Id="f" * 64, Names=["t1web_db_1"])
        entries.append(second)  # a container the IDs known so far do not have
        podman.relist("t1web")
        assert sorted(c.name for c in podman.project_containers("t1web", not_before=time.monotonic())) == ["t1web_db_1", "t1web_web_1"]
        assert ps.filters(ps.calls[-1]) == project_filter

        entries.remove(second)  # one went away: the round misses it, so the project is listed again
        assert [c.name for c in podman.project_containers("t1web", not_before=time.monotonic())] == ["t1web_web_1"]
        assert [ps.filters(call)[1].split("=")[0] for call in ps.calls[-2:]] == ["id", "label"]


def test_project_containers_ps_failure_is_a_podops_error(executable):
    podman = Podman(FakeRunner({"ps": (125, "", "Error: cannot connect to the podman socket\n")}), executable("podman"))

    with pytest.raises(PodopsError) as err:
        podman.project_containers("t1web", not_before=time.monotonic())

    assert str(err.value) == "'podman ps' failed: Error: cannot connect to the podman socket. Is podman working for this user? Try 'podman info'."


# --- Podman.known_containers: the plan's ps serves a project podops has not changed since ------------------------


def test_known_containers_reuse_the_plans_ps_until_podops_changes_the_project(podman_ps_entries, executable):
    entries = podman_ps_entries[:1] + [dict(podman_ps_entries[1], Names=["other_web_1"], Labels={"io.podman.compose.project": "other"})]
    inspect = json.dumps([{"Id": "0ther", "Name": "other_web_1", "Dependencies": []}])
    runner = FakeRunner({"ps": (0, json.dumps(entries), ""), "container": (0, inspect, ""), "stop": (0, "", ""), "rm": (0, "", "")})
    podman = Podman(runner, executable("podman"))
    ps = [podman.executable, "ps", "-a", "--format", "json"]

    podman.containers(label=None)  # the plan's host-wide ps
    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert podman.known_containers("fresh") == []
    assert runner.calls == [ps]

    podman.touched("t1web")  # podops ran podman-compose up for t1web: a ps of t1web, not of the host
    podman.known_containers("t1web")
    assert podman.known_containers("fresh") == []  # the plan's ps still serves the others
    assert runner.calls == [ps, ps + ["--filter", "label=io.podman.compose.project=t1web"]]

    podman.remove_containers(["other_web_1"])  # by name: any project may have changed
    podman.known_containers("other")
    assert runner.calls[2:] == [
        [podman.executable, "container", "inspect", "--format", "json", "other_web_1"],
        [podman.executable, "stop", "--ignore", "-t", "10", "0ther"],
        [podman.executable, "rm", "-f", "--ignore", "-t", "10", "0ther"],
        ps + ["--filter", "label=io.podman.compose.project=other"],
    ]


def test_known_containers_without_the_plans_ps_list_the_project(podman_ps_entries, executable):
    runner = FakeRunner({"ps": (0, json.dumps(podman_ps_entries[:1]), "")})
    podman = Podman(runner, executable("podman"))

    assert [c.name for c in podman.known_containers("t1web")] == ["t1web_web_1"]
    assert runner.calls == [[podman.executable, "ps", "-a", "--format", "json", "--filter", "label=io.podman.compose.project=t1web"]]


def test_filtered_ps_is_not_a_snapshot(podman_ps_entries, executable):
    runner = FakeRunner({"ps": (0, json.dumps(podman_ps_entries[:1]), "")})
    podman = Podman(runner, executable("podman"))

    podman.containers()  # only podops' labelled containers: not every project's
    podman.known_containers("t1web")

    assert len(runner.calls) == 2


def test_up_passes_the_active_profiles_and_the_time_limit(executable, monkeypatch):
    monkeypatch.setenv("PODOPS_COMPOSE_FORK_SERVER", "0")
    calls = []

    def runner(argv, cwd=None, env=None, timeout=None):
        calls.append((argv, timeout))
        return 0, "", ""

    compose = PodmanCompose(runner, executable("podman-compose"))
    compose.up("p", "/srv/app/compose.yaml", "/state/o.yml", profiles=["debug", "monitoring"], timeout=42)

    ((argv, timeout),) = calls
    assert argv[1:7] == ["--in-pod", "false", "--profile", "debug", "--profile", "monitoring"]
    assert argv[-2:] == ["up", "-d"] and timeout == 42


def test_a_pull_that_times_out_is_a_podops_error_naming_the_command(executable):
    from ansible_collections.podops.gitops.plugins.module_utils._common import CommandTimeout

    def runner(argv, cwd=None, env=None, timeout=None):
        raise CommandTimeout("podman pull", timeout)

    podman = Podman(runner, executable("podman"))
    with pytest.raises(PodopsError, match=r"'podman pull' timed out after 900s"):
        podman.pull("registry.example/big:1")


# --- removal order: podman refuses to remove a container another one still requires ---------------------------------


def test_removal_rounds_of_a_chain_remove_dependents_first():
    assert removal_rounds({"a": [], "b": ["a"], "c": ["b", "a"]}) == [["c"], ["b"], ["a"]]


def test_removal_rounds_of_independent_containers_is_one_round():
    assert removal_rounds({"x": [], "y": [], "z": []}) == [["x", "y", "z"]]
    assert removal_rounds({}) == []


def test_removal_rounds_of_a_diamond():
    assert removal_rounds({"db": [], "api": ["db"], "worker": ["db"], "web": ["api"]}) == [["worker", "web"], ["api"], ["db"]]


def test_removal_rounds_ignore_requirements_outside_the_set():
    # A pod's infra container, or a container of another project, that stays: it holds nothing back.
    assert removal_rounds({"b": ["infra"], "c": ["b", "infra"]}) == [["c"], ["b"]]


def test_removal_rounds_end_a_cycle_in_one_round():
    assert removal_rounds({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["c"], ["a", "b"]]


class ScriptedPodman:
    """A fake podman runner that answers ``container inspect`` from a captured output and otherwise behaves like
    podman 4.3.1's ``rm``: it refuses a container that a container still present requires."""

    def __init__(self, entries):
        self.present = {entry["Id"]: entry for entry in entries}
        self.calls = []

    def __call__(self, argv, cwd=None, timeout=None):
        self.calls.append(list(argv))
        words = argv[1:]
        if words[:2] == ["container", "inspect"]:
            refs = words[4:]
            found = [e for e in self.present.values() if e["Id"] in refs or e["Name"] in refs]
            missing = [r for r in refs if not any(r in (e["Id"], e["Name"]) for e in found)]
            return (125 if missing else 0), json.dumps(found), "".join(f"Error: inspecting object: no such container {r}\n" for r in missing)
        if words[0] == "stop":
            return 0, "", ""
        if words[0] == "rm":
            # Like podman, each container of the call on its own: one that a present container requires fails
            # (even when that one is in the same call), the others are removed.
            targets = [w for w in words if w in self.present]
            refused = {cid: [o for o, e in self.present.items() if cid in e["Dependencies"]] for cid in targets}
            refused = {cid: dependents for cid, dependents in refused.items() if dependents}
            for cid in targets:
                if cid not in refused:
                    del self.present[cid]
            errors = [f"Error: container {cid} has dependent containers which must be removed before it: {', '.join(d)}" for cid, d in refused.items()]
            return (1 if errors else 0), "\n".join(c for c in targets if c not in refused), "\n".join(errors)
        raise AssertionError(f"unexpected podman call {argv}")


@pytest.fixture
def chain_entries():
    with open(INSPECT_CHAIN_4_3_1, encoding="utf-8") as handle:
        return json.load(handle)


def test_remove_project_with_depends_on_removes_dependents_first(chain_entries, executable):
    by_name = {e["Name"]: e["Id"] for e in chain_entries}
    ps = [{"Id": e["Id"], "Names": [e["Name"]], "State": "running", "Labels": e["Config"]["Labels"]} for e in chain_entries]
    runner = ScriptedPodman(chain_entries)
    real = runner.__call__

    def answer(argv, cwd=None, timeout=None):
        if argv[1] == "ps":
            runner.calls.append(list(argv))
            return 0, json.dumps(ps), ""
        if argv[1] in ("pod", "network"):
            runner.calls.append(list(argv))
            return 0, "", ""
        return real(argv, cwd)

    podman = Podman(answer, executable("podman"))

    removed = podman.remove_project("t1chain", stop_timeout=3)

    assert runner.present == {}
    assert sorted(removed) == sorted(by_name.values())
    rms = [call[6:] for call in runner.calls if call[1] == "rm"]
    assert rms == [[by_name["t1chain_c_1"]], [by_name["t1chain_b_1"]], [by_name["t1chain_a_1"]]]
    stops = [call for call in runner.calls if call[1] == "stop"]
    assert len(stops) == 1 and stops[0][:5] == [podman.executable, "stop", "--ignore", "-t", "3"], "one stop timeout for the whole chain"
    assert all(call[2:6] == ["-f", "--ignore", "-t", "3"] for call in runner.calls if call[1] == "rm"), "every rm keeps its stop time limit"


def test_remove_project_lists_pod_and_networks_beside_the_removal_and_removes_them_after_it(podman_ps_entries, executable):
    """The pod and network listings do not wait for the containers' stop (they run in threads of their own), and
    the pod and networks go only once the containers are gone."""
    calls: list[tuple[str, list[str]]] = []
    lock = threading.Lock()

    def runner(argv, cwd=None, timeout=None):
        with lock:
            calls.append((threading.current_thread().name, list(argv[1:3])))
        if argv[1:3] == ["pod", "ps"]:
            return 0, "pod1\n", ""
        if argv[1:3] == ["network", "ls"]:
            return 0, "net1\nnet2\n", ""
        if argv[1] == "ps":
            return 0, json.dumps(podman_ps_entries[:1]), ""
        if argv[1:3] == ["container", "inspect"]:
            return 0, json.dumps([{"Id": argv[-1], "Dependencies": []}]), ""
        return 0, "", ""

    podman = Podman(runner, executable("podman"))
    assert podman.remove_project("t1web") == [podman_ps_entries[0]["Id"]]

    caller = threading.current_thread().name
    listed = {tuple(verb): thread for thread, verb in calls if verb in (["pod", "ps"], ["network", "ls"])}
    assert set(listed) == {("pod", "ps"), ("network", "ls")}
    assert caller not in listed.values()
    order = [verb for _thread, verb in calls if verb not in (["pod", "ps"], ["network", "ls"])]
    assert [verb[0] for verb in order[-5:]] == ["stop", "rm", "pod", "network", "network"]
    assert order[-3:] == [["pod", "rm"], ["network", "rm"], ["network", "rm"]]


def test_removing_a_chain_in_one_rm_is_what_podman_refuses(chain_entries):
    """The fake behaves like podman: the old single ``podman rm -f a b c`` fails and leaves a and b."""
    runner = ScriptedPodman(chain_entries)
    rc, _out, err = runner(["podman", "rm", "-f", "-t", "10", *[e["Id"] for e in chain_entries]])
    assert rc == 1 and "has dependent containers" in err
    assert sorted(e["Name"] for e in runner.present.values()) == ["t1chain_a_1", "t1chain_b_1"]


def test_remove_skips_containers_that_are_gone(chain_entries, executable):
    runner = ScriptedPodman(chain_entries[:1])
    podman = Podman(runner, executable("podman"))

    assert podman.remove(["t1chain_a_1", "nosuch"]) == [chain_entries[0]["Id"]]
    assert podman.remove(["nosuch"]) == []
    assert runner.present == {}


def test_remove_failure_names_podmans_reason(executable):
    entries = [{"Id": "x1", "Name": "x", "Dependencies": []}]

    def runner(argv, cwd=None, timeout=None):
        if argv[1] == "container":
            return 0, json.dumps(entries), ""
        if argv[1] == "rm":
            return 125, "", "Error: container x1 is in use by an outside container\n"
        return 0, "", ""

    with pytest.raises(PodopsError) as err:
        Podman(runner, executable("podman")).remove_containers(["x"])

    assert str(err.value) == "could not remove x: Error: container x1 is in use by an outside container"


def test_removing_a_project_the_plan_listed_empty_lists_nothing_again(podman_ps_entries, executable):
    """A blue-green standby that nothing runs: its removal before the slot starts needs no ps of its own (the plan's
    host-wide ps showed it empty); its pod and networks are still looked for."""
    runner = FakeRunner({"ps": (0, json.dumps(podman_ps_entries[:1]), ""), "pod": (0, "", ""), "network": (0, "", "")})
    podman = Podman(runner, executable("podman"))
    podman.containers(label=None)  # the plan's host-wide ps

    assert podman.remove_project("t1web-b", known=True) == []
    assert sorted(call[1] for call in runner.calls) == ["network", "pod", "ps"]

    runner.answers["ps"] = (0, "[]", "")
    podman.remove_project("t1web-b")  # without known (prune): a listing of its own
    assert sorted(call[1] for call in runner.calls[3:]) == ["network", "pod", "ps"]
    runner.calls[3:] = sorted(runner.calls[3:], key=lambda call: call[1] != "ps")
    assert runner.calls[3][-2:] == ["--filter", "label=io.podman.compose.project=t1web-b"]
