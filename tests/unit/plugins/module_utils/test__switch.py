# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_switch: the A/B switch's order of steps and its marker, over an in-memory backend.

The backends themselves run for real in tests/integration/test_blue_green.py (compose) and in the molecule
server (systemd); here the backend only records what it was asked, so every order and failure can be checked.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceFiles
from ansible_collections.podops.gitops.plugins.module_utils._switch import Marker, Switch, SwitchConfig, SystemdBackend


class Slots:
    """Backend double: which slots run which version; ``broken`` versions never get healthy."""

    def __init__(self, broken=()):
        self.running: dict[str, str] = {}
        self.calls: list[str] = []
        self.broken = set(broken)

    def start(self, slot, version):
        self.calls.append(f"start {slot} {version}")
        self.running[slot] = version
        if version in self.broken:
            raise PodopsError(f"{version} is not healthy")

    def stop(self, slot):
        self.calls.append(f"stop {slot}")
        self.running.pop(slot, None)

    def is_running(self, slot):
        return slot in self.running

    def describe(self, slot):
        return f"slot-{slot}"


def run(argv, cwd=None, env=None, timeout=None):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def upstream(tmp_path):
    return tmp_path / "proxy" / "app.upstream"


def make(tmp_path, backend, **config):
    config.setdefault("ports", {"a": 8081, "b": 8082})
    return Switch(SwitchConfig(name="app", drain=0, **config), backend, str(tmp_path / "state"), runner=run, sleep=lambda s: None)


def marker(tmp_path):
    return json.loads((tmp_path / "state/ab/app.json").read_text())


def test_first_version_starts_slot_a_and_marks_it_active(tmp_path):
    slots = Slots()
    result = make(tmp_path, slots).run("v1")

    assert (result.action, result.active, result.previous, result.changed) == ("started", "a", None, True)
    assert slots.calls == ["start a v1"]
    assert marker(tmp_path)["active"] == "a" and marker(tmp_path)["versions"] == {"a": "v1"} and marker(tmp_path)["pending"] is None


def test_same_version_again_changes_nothing(tmp_path):
    slots = Slots()
    make(tmp_path, slots).run("v1")
    result = make(tmp_path, slots).run("v1")

    assert (result.action, result.changed, result.active) == ("unchanged", False, "a")
    assert slots.calls == ["start a v1"]


def test_new_version_starts_the_standby_then_flips_then_stops_the_old(tmp_path, upstream):
    reloads = tmp_path / "reloads"
    slots = Slots()
    switch = make(tmp_path, slots, upstream_file=str(upstream), reload_command=["sh", "-c", f"cat {upstream} >> {reloads}"])
    switch.run("v1")
    result = switch.run("v2")

    assert (result.action, result.active, result.previous) == ("switched", "b", "a")
    assert slots.calls == ["start a v1", "start b v2", "stop a"]
    assert slots.running == {"b": "v2"}
    assert upstream.read_text() == "server 127.0.0.1:8082;\n"
    assert reloads.read_text() == "server 127.0.0.1:8081;\nserver 127.0.0.1:8082;\n", "the proxy reloaded after each flip, with the new upstream"
    assert marker(tmp_path)["active"] == "b" and marker(tmp_path)["previous"] == "a"
    assert make(tmp_path, slots, upstream_file=str(upstream)).run("v3").active == "a", "and back to a"


def test_a_standby_that_never_gets_healthy_is_stopped_and_the_old_slot_stays(tmp_path, upstream):
    slots = Slots(broken={"v2"})
    switch = make(tmp_path, slots, upstream_file=str(upstream))
    switch.run("v1")
    with pytest.raises(PodopsError) as err:
        switch.run("v2")

    assert str(err.value) == "slot b (slot-b) did not get healthy, so it was stopped and slot a stays active: v2 is not healthy"
    assert slots.running == {"a": "v1"}
    assert marker(tmp_path)["active"] == "a" and marker(tmp_path)["pending"] is None
    assert upstream.read_text() == "server 127.0.0.1:8081;\n"


def test_a_failing_health_url_keeps_the_old_slot(tmp_path):
    slots = Slots()
    switch = make(tmp_path, slots, health_url="http://127.0.0.1:{port}/ready", health_timeout=0.01)
    switch.probe = lambda url: (url == "http://127.0.0.1:8081/ready", "HTTP 503")
    switch.run("v1")
    with pytest.raises(PodopsError, match=r"http://127.0.0.1:8082/ready did not answer healthy within 0.01s \(last: HTTP 503\)"):
        switch.run("v2")

    assert slots.running == {"a": "v1"} and marker(tmp_path)["active"] == "a"


def test_a_failing_reload_puts_the_old_upstream_back(tmp_path, upstream):
    slots = Slots()
    make(tmp_path, slots, upstream_file=str(upstream), reload_command=["true"]).run("v1")
    with pytest.raises(PodopsError, match="the reverse proxy did not take slot b, so slot a stays active: reload command false failed"):
        make(tmp_path, slots, upstream_file=str(upstream), reload_command=["false"]).run("v2")

    assert upstream.read_text() == "server 127.0.0.1:8081;\n"
    assert slots.running == {"a": "v1"}
    assert marker(tmp_path)["active"] == "a" and marker(tmp_path)["versions"] == {"a": "v1"}


def test_leftovers_of_an_interrupted_switch_are_cleaned_up(tmp_path, upstream):
    slots = Slots()
    switch = make(tmp_path, slots, upstream_file=str(upstream))
    switch.run("v1")
    switch.run("v2")
    slots.running["a"] = "v1"  # the old slot was still running when the run died
    upstream.write_text("server 127.0.0.1:8081;\n")  # and the upstream was not rendered yet

    assert switch.run("v2", check_mode=True).steps == ["render the upstream file for slot b", "stop slot a (left running by an earlier switch)"]
    result = switch.run("v2")
    assert (result.action, result.changed) == ("repaired", True)
    assert slots.running == {"b": "v2"} and upstream.read_text() == "server 127.0.0.1:8082;\n"
    assert switch.run("v2").changed is False


def test_an_active_slot_that_died_is_replaced_by_the_other(tmp_path):
    slots = Slots()
    switch = make(tmp_path, slots)
    switch.run("v1")
    slots.running.clear()

    result = switch.run("v1")
    assert (result.action, result.active) == ("switched", "b")
    assert slots.running == {"b": "v1"}


def test_check_mode_says_which_slot_would_be_active_and_starts_nothing(tmp_path):
    slots = Slots()
    make(tmp_path, slots).run("v1")
    result = make(tmp_path, slots).run("v2", check_mode=True)

    assert (result.active, result.previous, result.changed) == ("b", "a", True)
    assert result.steps == ["start slot b (slot-b)", "wait until healthy", "make slot b active", "drain and stop slot a"]
    assert slots.calls == ["start a v1"] and marker(tmp_path)["active"] == "a"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "../x"}, "name must use letters, digits"),
        ({"ports": {"a": 1}}, "ports must give one port per slot"),
        ({"ports": {"a": 1, "b": 1}}, "the slots need two different ports"),
        ({"ports": {}, "health_url": "http://h:{port}/"}, "health_url use '{port}': give the slots' ports"),
        ({"reload_command": ["nginx"]}, "reload_command is run after the upstream file is written"),
        ({"drain": -1}, "drain >= 0"),
    ],
)
def test_bad_configs_are_refused_before_anything(tmp_path, config, message):
    slots = Slots()
    name = config.pop("name", "app")
    switch = Switch(SwitchConfig(name=name, **{"ports": {"a": 8081, "b": 8082}, **config}), slots, str(tmp_path / "state"))
    with pytest.raises(PodopsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        switch.run("v1")
    assert slots.calls == [] and not (tmp_path / "state").exists()


def test_a_marker_that_is_not_ours_is_named(tmp_path):
    (tmp_path / "state/ab").mkdir(parents=True)
    (tmp_path / "state/ab/app.json").write_text('{"active": "c"}')
    with pytest.raises(PodopsError, match=r"the A/B marker .*/state/ab/app.json is not a podops marker"):
        Marker(str(tmp_path / "state"), "app").load()


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into another user's state folder needs root")
def test_root_writes_the_marker_of_another_users_state_folder_as_that_user(tmp_path):
    """A rootless host: root's A/B switch of the webhook shim writes into ~deploy/.local/state/podops, whose
    run broker (deploy's user unit) must read the marker; the folder ab/ and the marker stay deploy's."""
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 4242, 4343)
    marker = Marker(str(state), "webhook")
    marker.save({"name": "webhook", "active": "a", "versions": {"a": "v1"}, "pending": None})
    marker.save({"name": "webhook", "active": "b", "versions": {"a": "v1", "b": "v2"}, "pending": None})
    for path in (state / "ab", state / "ab/webhook.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343), path
    assert stat.S_IMODE((state / "ab/webhook.json").stat().st_mode) == 0o600
    assert marker.load()["active"] == "b"
    assert [p.name for p in (state / "ab").iterdir()] == ["webhook.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into another user's state folder needs root")
def test_root_does_not_write_the_marker_through_a_link_of_the_other_user(tmp_path):
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    state.mkdir()
    elsewhere.mkdir()
    os.chown(state, 4242, 4343)
    (state / "ab").symlink_to(elsewhere)
    with pytest.raises(PodopsError, match="is a symbolic link"):
        Marker(str(state), "webhook").save({"name": "webhook", "active": "a", "versions": {}, "pending": None})
    assert list(elsewhere.iterdir()) == []


def test_a_marker_in_roots_own_state_folder_stays_roots(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    Marker(str(state), "webhook").save({"name": "webhook", "active": "a", "versions": {}, "pending": None})
    assert (state / "ab/webhook.json").stat().st_uid == os.geteuid()


def test_the_reconcile_forgetting_a_service_leaves_the_shims_marker(tmp_path):
    """prune (ServiceFiles.forget) and leaving blue-green (forget_slots) remove only that service's files:
    the shim's marker ab/webhook.json, in the same state folder, stays."""
    state = tmp_path / "state"
    Marker(str(state), "webhook").save({"name": "webhook", "active": "a", "versions": {}, "pending": None})
    Marker(str(state), "web").save({"name": "web", "active": "a", "versions": {}, "pending": None})
    ServiceFiles(str(state), "web").forget()
    ServiceFiles(str(state), "webhooks").forget_slots()
    assert sorted(p.name for p in (state / "ab").iterdir()) == ["webhook.json"]


def test_systemd_backend_commands(tmp_path):
    calls = []

    def systemctl(argv, cwd=None, env=None, timeout=None):
        calls.append(argv[1:])
        return (0, "active\n", "") if argv[1] == "is-active" else (0, "", "")

    backend = SystemdBackend(systemctl, "podops-webhook@.service", sleep=lambda s: None)
    backend.start("b", "v2")
    backend.stop("a")

    assert calls == [
        ["restart", "podops-webhook@b.service"],
        ["is-active", "podops-webhook@b.service"],
        ["enable", "podops-webhook@b.service"],
        ["disable", "podops-webhook@a.service"],
        ["stop", "--no-block", "podops-webhook@a.service"],
    ]
    with pytest.raises(PodopsError, match="must be a systemd template unit name"):
        SystemdBackend(systemctl, "podops-webhook.service")


def test_http_ok_against_a_real_server():
    import http.server
    import threading

    from ansible_collections.podops.gitops.plugins.module_utils._switch import http_ok

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            codes = {"/ok": 200, "/moved": 302, "/down": 503}
            self.send_response(codes[self.path])
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert http_ok(f"{base}/ok") == (True, "HTTP 200")
        assert http_ok(f"{base}/moved") == (True, "HTTP 302")
        assert http_ok(f"{base}/down") == (False, "HTTP 503")
    finally:
        server.shutdown()
    ok, why = http_ok(base + "/ok", timeout=1)
    assert ok is False and why
