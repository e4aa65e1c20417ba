# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The A/B switch (blue-green): a new version goes live only after it is healthy beside the old one.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

Two slots, ``a`` and ``b``; one of them is *active*. A switch to a new version:

1. starts the standby slot with the new version on its own port (a backend: compose project
   ``<name>-<slot>`` or systemd instance ``<unit>@<slot>.service``);
2. waits until it is healthy (the backend's own gate, then an optional HTTP check on its port);
3. only then flips the *marker* ``<state_dir>/ab/<name>.json`` (one atomic rename: it always names
   exactly one active slot), renders the reverse-proxy upstream file and runs its reload command;
4. drains (waits ``drain`` seconds for requests in flight) and stops the old slot.

A standby that never gets healthy is stopped and the old slot stays active. A run killed at any step
leaves a marker that names the slot serving traffic; the next run finishes the job (stops a leftover
slot, renders the upstream again) or starts over from step 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import typing as t
import urllib.error
from dataclasses import dataclass, field

from ._common import TIMEOUT_DEFAULTS, PodopsError, Runner, last_lines, utcnow
from ._state import SLOTS, ServiceFiles, atomic_write, ensure_dir, foreign_owner, write_json

DEFAULT_UPSTREAM_TEMPLATE = "server 127.0.0.1:{port};\n"


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


@dataclass
class SwitchConfig:
    """What a switch needs besides its backend; validated by ``validate``."""

    name: str
    ports: dict[str, int] = field(default_factory=dict)
    health_url: str | None = None  # '{port}' and '{slot}' are filled in, e.g. http://127.0.0.1:{port}/ready
    health_timeout: float = 60.0
    health_samples: int = 2
    health_interval: float = 0.5
    upstream_file: str | None = None
    upstream_template: str = DEFAULT_UPSTREAM_TEMPLATE
    reload_command: list[str] = field(default_factory=list)
    drain: float = 2.0
    reload_timeout: float = TIMEOUT_DEFAULTS["reload"]  # seconds the reload command may take

    def validate(self, where: str = "ab_switch") -> None:
        if not self.name or not all(c.isalnum() or c in "_.-" for c in self.name) or self.name.startswith("."):
            raise PodopsError(f"{where}: name must use letters, digits, '.', '_' and '-', not {self.name!r}")
        if self.ports:
            self._validate_ports(where)
        templates = (("health_url", self.health_url), ("upstream_template", self.upstream_file and self.upstream_template))
        needs_port = [what for what, text in templates if text and "{port}" in text]
        if needs_port and not self.ports:
            raise PodopsError(f"{where}: {' and '.join(needs_port)} use '{{port}}': give the slots' ports (ports: {{a: 8081, b: 8082}})")
        if self.health_url and not self.health_url.startswith(("http://", "https://")):
            raise PodopsError(f"{where}: health_url must be an http(s) URL such as http://127.0.0.1:{{port}}/health, not {self.health_url!r}")
        if self.upstream_file and not os.path.isabs(self.upstream_file):
            raise PodopsError(f"{where}: upstream_file must be an absolute path, not {self.upstream_file!r}")
        if self.reload_command and not self.upstream_file:
            raise PodopsError(f"{where}: reload_command is run after the upstream file is written: give upstream_file too")
        if not isinstance(self.reload_command, list) or not all(isinstance(arg, str) and arg for arg in self.reload_command):
            raise PodopsError(f"{where}: reload_command must be a list of arguments (no shell), for example ['nginx', '-s', 'reload']")
        if self.health_timeout <= 0 or self.health_samples < 1 or self.health_interval < 0 or self.drain < 0:
            raise PodopsError(f"{where}: needs health timeout > 0, samples >= 1, interval >= 0 and drain >= 0")
        try:
            self.upstream(SLOTS[0])
        except (KeyError, IndexError, ValueError) as exc:
            raise PodopsError(f"{where}: upstream_template may only use {{port}} and {{slot}} (double other braces): {exc}") from exc

    def _validate_ports(self, where: str) -> None:
        if sorted(self.ports) != list(SLOTS):
            raise PodopsError(f"{where}: ports must give one port per slot, for example {{a: 8081, b: 8082}}, not {self.ports!r}")
        for slot, port in self.ports.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise PodopsError(f"{where}: port of slot {slot} must be a number from 1 to 65535, not {port!r}")
        if self.ports["a"] == self.ports["b"]:
            raise PodopsError(f"{where}: the slots need two different ports (both are {self.ports['a']}): the new version starts beside the old one")

    def port(self, slot: str) -> int | None:
        return self.ports.get(slot)

    def upstream(self, slot: str) -> str:
        return self.upstream_template.format(port=self.port(slot) or "", slot=slot)


class Marker:
    """``<state_dir>/ab/<name>.json``: which slot is active, each slot's version, a switch in progress.

    Written by atomic rename only, so a reader (the shim's /health, a crash recovery) sees the old or the
    new file, never a mix: there is never more than one active slot, and never none once one was."""

    def __init__(self, state_dir: str, name: str):
        self.path = ServiceFiles(state_dir, name).marker
        self.name = name
        self.state_dir = state_dir

    def load(self) -> dict[str, t.Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {"name": self.name, "active": None, "versions": {}, "pending": None}
        except (OSError, ValueError) as exc:
            raise PodopsError(f"the A/B marker {self.path} cannot be read ({exc}); fix it or move it away (then slot a is started anew)") from exc
        if not isinstance(data, dict) or data.get("active") not in (None, *SLOTS) or not isinstance(data.get("versions", {}), dict):
            raise PodopsError(f"the A/B marker {self.path} is not a podops marker (needs 'active': 'a' or 'b'); move it away")
        data.setdefault("versions", {})
        data.setdefault("pending", None)
        return data

    def save(self, data: t.Mapping[str, t.Any]) -> None:
        # Root switching the shim of a rootless host writes into that user's state folder: the marker (and its
        # folder) stay the user's, so the user's run broker can read which slot is active.
        owner = foreign_owner(self.state_dir)
        folder = os.path.dirname(self.path)
        ensure_dir(folder)
        if owner is not None:
            # That user can swap its own folders: root does not write through a symbolic link it put there.
            for path in (self.state_dir, folder):
                if os.path.islink(path):
                    raise PodopsError(f"{path} is a symbolic link in another user's state folder: root does not write the A/B marker through it")
            if os.stat(folder).st_uid == 0:
                os.chown(folder, *owner)
        write_json(self.path, dict(data), owner=owner)


class Backend(t.Protocol):
    """Where the slots run. ``start`` raises PodopsError when the slot does not come up healthy."""

    def start(self, slot: str, version: str) -> None: ...

    def stop(self, slot: str) -> None: ...

    def is_running(self, slot: str) -> bool: ...

    def describe(self, slot: str) -> str: ...


@dataclass
class SwitchResult:
    changed: bool
    active: str | None
    previous: str | None
    action: str  # switched | unchanged | repaired | started (the very first slot)
    version: str
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, t.Any]:
        return {"changed": self.changed, "active": self.active, "previous": self.previous, "outcome": self.action, "version": self.version, "steps": self.steps}


def http_ok(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """One GET: True for a 2xx/3xx answer."""
    # Imported here: ansible.module_utils.urls costs 0.2 s to import, and most runs never probe a URL.
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    try:
        with open_url(url, timeout=timeout, validate_certs=False, follow_redirects="none") as response:
            return 200 <= response.status < 400, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # redirects are not followed: a 3xx answer counts as up
        return 300 <= exc.code < 400, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


def wait_http(
    url: str,
    timeout: float,
    samples: int,
    interval: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
    probe: t.Callable[[str], tuple[bool, str]] = http_ok,
) -> None:
    deadline = clock() + timeout
    good = 0
    while True:
        ok, why = probe(url)
        good = good + 1 if ok else 0
        if good >= samples:
            return
        if clock() >= deadline:
            raise PodopsError(f"{url} did not answer healthy within {timeout:g}s (last: {why})")
        sleep(interval)


class Switch:
    def __init__(
        self,
        config: SwitchConfig,
        backend: Backend,
        state_dir: str,
        runner: Runner | None = None,
        sleep: t.Callable[[float], None] = time.sleep,
        probe: t.Callable[[str], tuple[bool, str]] = http_ok,
    ):
        self.config = config
        self.backend = backend
        self.marker = Marker(state_dir, config.name)
        self.runner = runner
        self.sleep = sleep
        self.probe = probe

    # --- read-only --------------------------------------------------------------------------------------------

    def status(self) -> dict[str, t.Any]:
        return self.marker.load()

    def _repairs(self, data: t.Mapping[str, t.Any]) -> list[str]:
        active = data["active"]
        repairs = []
        if self.config.upstream_file and self._read_upstream() != self.config.upstream(active):
            repairs.append(f"render the upstream file for slot {active}")
        if self.backend.is_running(other(active)):
            repairs.append(f"stop slot {other(active)} (left running by an earlier switch)")
        if data.get("pending"):
            repairs.append("clear the unfinished switch")
        return repairs

    # --- the switch -------------------------------------------------------------------------------------------

    def run(self, version: str, check_mode: bool = False) -> SwitchResult:
        self.config.validate()
        data = self.marker.load()
        active = data["active"]
        if active and data["versions"].get(active) == version and self.backend.is_running(active):
            # The active slot runs this version: at most the leftovers of an interrupted switch to clean up.
            repairs = self._repairs(data)
            result = SwitchResult(bool(repairs), active, data.get("previous"), "repaired" if repairs else "unchanged", version, repairs)
            if not check_mode and repairs:
                self._finish(data, active)
            return result
        standby = other(active) if active else SLOTS[0]
        result = SwitchResult(True, standby, active, "switched" if active else "started", version)
        if check_mode:
            result.steps = [f"start slot {standby} ({self.backend.describe(standby)})", "wait until healthy", f"make slot {standby} active"]
            if active:
                result.steps.append(f"drain and stop slot {active}")
            return result

        self._start_standby(data, standby, active, version)
        result.steps.append(f"started slot {standby}, healthy")
        self.step_done("standby_started")

        # The flip: one rename. From here on the new slot is the one that serves.
        old_upstream = self._read_upstream()
        data.update(active=standby, previous=active, switched_at=utcnow())
        data["versions"] = dict(data["versions"], **{standby: version})
        data["pending"] = {"slot": active, "step": "draining", "since": utcnow()} if active else None
        self.marker.save(data)
        result.steps.append(f"slot {standby} active")
        self.step_done("flipped")
        try:
            self._render_upstream(standby)
        except PodopsError as exc:
            self._flip_back(data, active, standby, old_upstream)
            raise PodopsError(f"the reverse proxy did not take slot {standby}, so slot {active} stays active: {exc}") from exc
        if self.config.upstream_file:
            result.steps.append("upstream rendered and reloaded")
        self.step_done("upstream_reloaded")
        if active:
            self.sleep(self.config.drain)
            self.step_done("drained")
            self.backend.stop(active)
            result.steps.append(f"slot {active} drained and stopped")
        data["pending"] = None
        self.marker.save(data)
        return result

    def _start_standby(self, data: dict[str, t.Any], standby: str, active: str | None, version: str) -> None:
        """Start ``standby`` beside the active slot and wait until it is healthy; on failure stop it again."""
        data["pending"] = {"slot": standby, "version": version, "step": "starting", "since": utcnow()}
        self.marker.save(data)
        try:
            self.backend.start(standby, version)
            if self.config.health_url:
                url = self.config.health_url.format(port=self.config.port(standby) or "", slot=standby)
                wait_http(url, self.config.health_timeout, self.config.health_samples, self.config.health_interval, sleep=self.sleep, probe=self.probe)
        except PodopsError as exc:
            with contextlib.suppress(PodopsError):
                self.backend.stop(standby)
            data["pending"] = None
            self.marker.save(data)
            keep = f"slot {active} stays active" if active else "no slot is active yet"
            raise PodopsError(f"slot {standby} ({self.backend.describe(standby)}) did not get healthy, so it was stopped and {keep}: {exc}") from exc

    def _finish(self, data: dict[str, t.Any], active: str) -> None:
        """Complete an interrupted switch: the proxy first (it may still send traffic to the old slot), then
        drain and stop the old slot."""
        self._render_upstream(active)
        if self.backend.is_running(other(active)):
            self.sleep(self.config.drain)
            self.backend.stop(other(active))
        data["pending"] = None
        self.marker.save(data)

    def _flip_back(self, data: dict[str, t.Any], active: str | None, standby: str, old_upstream: str | None) -> None:
        data.update(active=active, previous=standby)
        data["versions"].pop(standby, None)
        data["pending"] = None
        self.marker.save(data)
        if self.config.upstream_file and old_upstream is not None:
            atomic_write(self.config.upstream_file, old_upstream, mode=0o644)
            with contextlib.suppress(PodopsError):
                self._reload()
        with contextlib.suppress(PodopsError):
            self.backend.stop(standby)

    def _read_upstream(self) -> str | None:
        if not self.config.upstream_file:
            return None
        try:
            with open(self.config.upstream_file, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PodopsError(f"cannot read the upstream file {self.config.upstream_file}: {exc.strerror}") from exc

    def _render_upstream(self, slot: str) -> None:
        if not self.config.upstream_file:
            return
        wanted = self.config.upstream(slot)
        if self._read_upstream() == wanted:
            return
        try:
            ensure_dir(os.path.dirname(self.config.upstream_file), 0o755)
            atomic_write(self.config.upstream_file, wanted, mode=0o644)
        except OSError as exc:
            raise PodopsError(f"cannot write the upstream file {self.config.upstream_file}: {exc}") from exc
        self._reload()

    def _reload(self) -> None:
        if not self.config.reload_command:
            return
        if self.runner is None:  # pragma: no cover - the callers always pass one
            raise PodopsError("no runner to run the reload command")
        rc, out, err = self.runner(list(self.config.reload_command), timeout=self.config.reload_timeout)
        if rc != 0:
            raise PodopsError(f"reload command {' '.join(self.config.reload_command)} failed (rc {rc}): {last_lines(err or out)}")

    def step_done(self, step: str) -> None:
        """``step`` (standby_started, flipped, upstream_reloaded, drained) is durable: the marker says so. A
        no-op; the crash tests replace it to kill the process right here."""


class SystemdBackend:
    """Slots are instances of a systemd template unit: ``podops-webhook@.service`` -> ``podops-webhook@a.service``.

    ``start`` restarts the instance (so it loads the new version) and waits until systemd calls it active;
    ``stop`` lets it drain (the unit's stop timeout bounds that); the active instance is enabled, the other disabled."""

    def __init__(self, runner: Runner, unit: str, timeout: float = 60.0, systemctl: str = "systemctl", sleep: t.Callable[[float], None] = time.sleep):
        if not unit.endswith("@.service") or "/" in unit or len(unit) <= len("@.service"):
            raise PodopsError(f"unit must be a systemd template unit name such as podops-webhook@.service, not {unit!r}")
        self.runner = runner
        self.unit = unit
        self.timeout = timeout
        self.systemctl = systemctl
        self.sleep = sleep

    def instance(self, slot: str) -> str:
        return self.unit.replace("@.service", f"@{slot}.service")

    def describe(self, slot: str) -> str:
        return self.instance(slot)

    def _systemctl(self, *args: str, timeout: float = TIMEOUT_DEFAULTS["podman"]) -> tuple[int, str, str]:
        return self.runner([self.systemctl, *args], timeout=timeout)

    def start(self, slot: str, version: str) -> None:
        unit = self.instance(slot)
        # restart waits for the unit's start (ExecStartPre, Type=notify...): give it the health timeout on top.
        rc, out, err = self._systemctl("restart", unit, timeout=self.timeout + TIMEOUT_DEFAULTS["podman"])
        if rc != 0:
            raise PodopsError(f"systemctl restart {unit} failed: {last_lines(err or out)} (see journalctl -u {unit})")
        deadline = time.monotonic() + self.timeout
        while not self.is_running(slot):
            if time.monotonic() >= deadline:
                raise PodopsError(f"{unit} is not active after {self.timeout:g}s (see journalctl -u {unit})")
            self.sleep(0.2)
        self._systemctl("enable", unit)

    def stop(self, slot: str) -> None:
        # --no-block: the old instance may be running this very switch (the shim updating itself); it drains on
        # SIGTERM and exits when its run is recorded. Waiting here would wait for ourselves.
        unit = self.instance(slot)
        self._systemctl("disable", unit)
        rc, out, err = self._systemctl("stop", "--no-block", unit)
        if rc != 0:
            raise PodopsError(f"systemctl stop {unit} failed: {last_lines(err or out)}")

    def is_running(self, slot: str) -> bool:
        rc, out, _err = self._systemctl("is-active", self.instance(slot))
        return rc == 0 and out.strip() in ("active", "reloading")
