# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_health: the verdict on one sample of real ``podman ps`` output, and the wait loop around it."""

from __future__ import annotations

import contextlib

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._health import HealthError, judge_sample, wait_healthy
from ansible_collections.podops.gitops.plugins.module_utils._podman import Container

WEB_ID = "75593aafccdeba07393f7403e14734e82b23f47c80823cd92fd1b004bad48b0b"
STARTED = 1795696858


def as_service(entry, service, exit_code=None):
    """The captured entry as another compose service of the same project (t1web_<service>_1)."""
    entry = dict(entry, Id=f"{service}-{WEB_ID[len(service) + 1 :]}", Names=[f"t1web_{service}_1"])
    entry["Labels"] = dict(entry["Labels"], **{"com.docker.compose.service": service, "io.podman.compose.service": service})
    if exit_code is not None:
        entry.update(ExitCode=exit_code, Status=f"Exited ({exit_code}) 2 seconds ago")
    return entry


def containers(*entries):
    return [Container.from_ps(entry) for entry in entries]


# --- podman 4.3.1 ps output as podops reads it ------------------------------------------------------------------


def test_captured_ps_entry(ps_entry):
    container = Container.from_ps(ps_entry("starting"))

    assert container == Container(
        id=WEB_ID,
        name="t1web_web_1",
        state="running",
        status="Up 1 second ago (starting)",
        exit_code=0,
        started_at=STARTED,
        image_id="f6448ca500ae008f76d2e7efc7de78918623e78a7d8f1773fd0210e39d1450a0",
        labels=ps_entry("starting")["Labels"],
    )
    assert (container.project, container.compose_service, container.health) == ("t1web", "web", "starting")


@pytest.mark.parametrize(
    ("variant", "state", "exit_code", "health"),
    [
        ("starting", "running", 0, "starting"),
        ("healthy", "running", 0, "healthy"),
        ("unhealthy", "running", 0, "unhealthy"),
        ("no-healthcheck", "running", 0, None),
        ("exited", "exited", 1, None),
    ],
)
def test_captured_ps_variants(ps_entry, variant, state, exit_code, health):
    container = Container.from_ps(ps_entry(variant))

    assert (container.state, container.exit_code, container.health) == (state, exit_code, health)


# --- judge_sample -------------------------------------------------------------------------------------------------


def test_all_running_and_healthy_is_good(ps_entry):
    sample = containers(ps_entry("healthy"), as_service(ps_entry("no-healthcheck"), "db"))

    verdict = judge_sample(sample, ["web", "db"], [], {WEB_ID: True}, {WEB_ID: STARTED})

    assert verdict == ("good", "running and healthy")


def test_first_sample_without_previous_starts_is_good(ps_entry):
    assert judge_sample(containers(ps_entry("healthy")), ["web"], [], {WEB_ID: True}, {}) == ("good", "running and healthy")


def test_missing_compose_service_waits(ps_entry):
    verdict = judge_sample(containers(ps_entry("healthy")), ["web", "db"], [], {WEB_ID: True}, {})

    assert verdict == ("wait", "no container for compose service db yet")


def test_exited_non_zero_is_fatal_with_name_and_code(ps_entry):
    verdict = judge_sample(containers(ps_entry("exited")), ["web"], [], {}, {})

    assert verdict == ("fatal", "container t1web_web_1 exited with code 1 (see 'podman logs t1web_web_1')")


def test_exited_zero_is_fatal_unless_oneshot(ps_entry):
    sample = containers(ps_entry("healthy"), as_service(ps_entry("exited"), "migrate", exit_code=0))

    assert judge_sample(sample, ["web", "migrate"], ["migrate"], {WEB_ID: True}, {}) == ("good", "running and healthy")
    assert judge_sample(sample, ["web", "migrate"], [], {WEB_ID: True}, {}) == (
        "fatal",
        "container t1web_migrate_1 exited with code 0 (see 'podman logs t1web_migrate_1'); if compose service migrate is a one-shot job, "
        "list it in x-podops.oneshot (or let a service wait for it with depends_on condition service_completed_successfully)",
    )


def test_oneshot_that_failed_is_fatal(ps_entry):
    sample = containers(ps_entry("healthy"), as_service(ps_entry("exited"), "migrate", exit_code=2))

    assert judge_sample(sample, ["web", "migrate"], ["migrate"], {WEB_ID: True}, {})[0] == "fatal"


def test_restarted_container_waits(ps_entry):
    restarted = ps_entry("healthy", StartedAt=STARTED + 7)

    verdict = judge_sample(containers(restarted), ["web"], [], {WEB_ID: True}, {WEB_ID: STARTED})

    assert verdict == ("wait", "container t1web_web_1 restarted")


def test_failed_healthcheck_waits(ps_entry):
    verdict = judge_sample(containers(ps_entry("unhealthy")), ["web"], [], {WEB_ID: False}, {WEB_ID: STARTED})

    assert verdict == ("wait", "container t1web_web_1 is not healthy yet")


@pytest.mark.parametrize("state", ["created", "configured", "paused", "stopping"])
def test_container_not_running_yet_waits(ps_entry, state):
    verdict = judge_sample(containers(ps_entry("no-healthcheck", State=state)), ["web"], [], {}, {})

    assert verdict == ("wait", f"container t1web_web_1 is {state}")


# --- wait_healthy ---------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakePodman:
    """Answers ``containers()`` from a script of ps samples (the last one repeats) and ``healthcheck()`` from a map."""

    def __init__(self, samples, health_results=None):
        self.samples = list(samples)
        self.health_results = list(health_results or [])
        self.projects = []
        self.healthchecks = []
        self.watched = []
        self.relisted = []

    def containers(self, label="io.podops.service", project=None):
        self.projects.append(project)
        entries = self.samples.pop(0) if len(self.samples) > 1 else self.samples[0]
        return containers(*entries)

    def project_containers(self, project, not_before):
        return self.containers(project=project)

    @contextlib.contextmanager
    def watching(self, project):
        self.watched.append(project)
        yield
        self.watched.remove(project)

    def relist(self, project):
        self.relisted.append(project)

    def healthcheck(self, container_id, timeout=None):
        self.healthchecks.append(container_id)
        return self.health_results.pop(0) if len(self.health_results) > 1 else self.health_results[0]

    def health_output(self, container_id):
        return None


def wait(podman, fake, timeout=10.0, samples=3, interval=0.5, expected=("web",), oneshot=()):
    return wait_healthy(podman, "t1web", list(expected), list(oneshot), timeout, samples, interval, clock=fake.clock, sleep=fake.sleep)


def test_wait_returns_after_consecutive_good_samples(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("healthy")]], [True])

    assert wait(podman, fake) == 3
    assert fake.sleeps == [0.5, 0.5]
    assert podman.projects == ["t1web", "t1web", "t1web"]
    assert podman.healthchecks == [WEB_ID] * 3


@pytest.mark.parametrize(
    ("sample_cost", "sleep"),
    [
        (0.2, 0.3),  # a sample's own podman calls count towards the interval: samples 0.5 s apart, not 0.7 s
        (2.0, 0.0),  # a sample slower than the interval is followed at once
    ],
)
def test_the_interval_runs_from_one_samples_start_to_the_next(ps_entry, sample_cost, sleep):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("healthy")]], [True])
    healthcheck = podman.healthcheck

    def slow_healthcheck(container_id, timeout=None):
        fake.now += sample_cost
        return healthcheck(container_id, timeout)

    podman.healthcheck = slow_healthcheck

    assert wait(podman, fake, samples=2) == 2
    assert fake.sleeps == [pytest.approx(sleep)]


def test_wait_counts_only_consecutive_good_samples(ps_entry):
    fake = FakeClock()
    healthy = [ps_entry("healthy")]
    restarted = [ps_entry("healthy", StartedAt=STARTED + 30)]
    podman = FakePodman([[ps_entry("starting")], healthy, healthy, restarted, restarted, restarted, restarted], [False, True])

    # starting (wait), good, good, restarted (wait), good, good, good
    assert wait(podman, fake) == 7
    assert len(fake.sleeps) == 6


def test_container_without_healthcheck_is_not_probed(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("no-healthcheck")]], [False])

    assert wait(podman, fake, samples=2) == 2
    assert podman.healthchecks == []


def test_wait_times_out_with_the_last_reason(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("unhealthy")]], [False])

    with pytest.raises(PodopsError) as err:
        wait(podman, fake, timeout=2.0, interval=0.5)

    assert str(err.value) == "not healthy after 2s: container t1web_web_1 is not healthy yet"
    assert len(podman.projects) == 5  # at 100.0, 100.5, 101.0, 101.5 and 102.0
    assert fake.now == 102.0


def test_wait_times_out_when_a_service_never_appears(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("healthy")]], [True])

    with pytest.raises(PodopsError) as err:
        wait(podman, fake, timeout=1.0, expected=("web", "db"))

    assert str(err.value) == "not healthy after 1s: no container for compose service db yet"
    assert podman.relisted == ["t1web"] * len(podman.projects)  # the IDs seen so far are not all of them


def test_the_gate_watches_its_project_only_while_it_samples(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("healthy")]], [True])
    seen = []
    podman.healthcheck = lambda container_id, timeout=None: seen.append(list(podman.watched)) or True

    assert wait(podman, fake, samples=2) == 2
    assert seen == [["t1web"], ["t1web"]]
    assert podman.watched == []
    assert podman.relisted == []


def test_wait_stops_at_once_on_a_crashed_container(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("starting")], [ps_entry("exited")]], [False])

    with pytest.raises(PodopsError) as err:
        wait(podman, fake, timeout=60.0)

    assert str(err.value) == "container t1web_web_1 exited with code 1 (see 'podman logs t1web_web_1')"
    assert fake.sleeps == [0.5]


def test_wait_accepts_a_finished_oneshot(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("healthy"), as_service(ps_entry("exited"), "migrate", exit_code=0)]], [True])

    assert wait(podman, fake, samples=1, expected=("web", "migrate"), oneshot=("migrate",)) == 1
    assert fake.sleeps == []


def test_a_health_gate_that_never_passes_names_the_container_and_says_what_its_check_printed(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("unhealthy")]], [False])
    podman.health_output = lambda container_id: "wget: server returned error: HTTP/1.1 404 Not Found"
    progress = []

    with pytest.raises(HealthError) as err:
        wait_healthy(podman, "t1web", ["web"], [], 25.0, 2, 1.0, clock=fake.clock, sleep=fake.sleep, progress=progress.append)

    assert str(err.value) == (
        "not healthy after 25s: container t1web_web_1 is not healthy yet (its healthcheck said: wget: server returned error: HTTP/1.1 404 Not Found)"
    )
    assert err.value.container.name == "t1web_web_1"
    assert err.value.healthcheck == "wget: server returned error: HTTP/1.1 404 Not Found"
    # every 10 s, what it waits for and for how long
    assert progress == [
        "t1web: waiting for health for 10s of 25s (container t1web_web_1 is not healthy yet)",
        "t1web: waiting for health for 20s of 25s (container t1web_web_1 is not healthy yet)",
    ]


def test_a_crashed_container_is_named_for_its_logs(ps_entry):
    fake = FakeClock()
    podman = FakePodman([[ps_entry("exited")]], [False])

    with pytest.raises(HealthError) as err:
        wait(podman, fake, timeout=60.0)

    assert err.value.container.name == "t1web_web_1"
    assert err.value.healthcheck is None
