# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_depends: the depends_on shapes real compose files use, the start stages, and the job verdict."""

from __future__ import annotations

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._depends import (
    depends_on,
    gates,
    judge_completed,
    merge_depends_on,
    start_stages,
    started_overrides,
)
from ansible_collections.podops.gitops.plugins.module_utils._podman import Container

# The shape of a Nextcloud stack seen in a real env repo: two healthy dependencies, a proxy that waits for the app.
NEXTCLOUD = {
    "mysql": {"image": "mariadb"},
    "redis": {"image": "redis"},
    "nextcloud": {"image": "nextcloud", "depends_on": {"mysql": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}},
    "web": {"image": "nginx", "depends_on": {"nextcloud": {"condition": "service_healthy"}}},
    "cron": {"image": "nextcloud", "depends_on": ["nextcloud"]},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("db", {"db": {"condition": "service_started"}}),
        (["db", "cache"], {"db": {"condition": "service_started"}, "cache": {"condition": "service_started"}}),
        ({"db": None}, {"db": {"condition": "service_started"}}),
        (
            {"db": {"condition": "service_healthy", "restart": True, "required": False}},
            {"db": {"condition": "service_healthy", "restart": True, "required": False}},
        ),
        (None, {}),
    ],
)
def test_every_form_of_depends_on(raw, expected):
    assert depends_on({"depends_on": raw}) == expected


def test_an_override_merges_per_dependency_as_podman_compose_does():
    """Checked with podman-compose 1.6 config: an override entry without a condition gets service_started (each file
    is normalized before the merge), the other keys of the dependency stay."""
    base = {"depends_on": {"db": {"condition": "service_healthy", "restart": True}, "cache": {"condition": "service_started"}}}
    assert merge_depends_on(base, {"depends_on": {"db": {"required": False}, "queue": {"condition": "service_healthy"}}}) == {
        "db": {"condition": "service_started", "restart": True, "required": False},
        "cache": {"condition": "service_started"},
        "queue": {"condition": "service_healthy"},
    }


def test_stages_follow_the_conditions_podops_waits_for():
    assert gates(NEXTCLOUD) == {
        "nextcloud": {"mysql": "service_healthy", "redis": "service_healthy"},
        "web": {"nextcloud": "service_healthy"},
    }
    # cron only needs nextcloud started: it starts with it (podman starts a required container with its dependent).
    assert start_stages(NEXTCLOUD, NEXTCLOUD) == [["mysql", "redis"], ["nextcloud", "cron"], ["web"]]


def test_a_dependency_that_is_not_there_is_not_waited_for():
    services = {"web": {"depends_on": {"metrics": {"condition": "service_healthy", "required": False}}}}
    assert gates(services) == {}
    assert start_stages(services, services) == [["web"]]


def test_a_cycle_is_named():
    services = {"a": {"depends_on": {"b": {"condition": "service_healthy"}}}, "b": {"depends_on": ["a"]}}
    with pytest.raises(PodopsError, match="depends_on forms a cycle: a -> b -> a"):
        start_stages(services, services)


def test_the_override_rewrites_only_the_conditions_podops_waits_for():
    services = dict(NEXTCLOUD, job={"image": "x", "depends_on": {"migrate": {"condition": "service_completed_successfully", "restart": True}}})
    assert started_overrides(services) == {
        "nextcloud": {"depends_on": {"mysql": {"condition": "service_started"}, "redis": {"condition": "service_started"}}},
        "web": {"depends_on": {"nextcloud": {"condition": "service_started"}}},
        "job": {"depends_on": {"migrate": {"condition": "service_started"}}},
    }


def job(state: str, exit_code: int = 0) -> Container:
    labels = {"com.docker.compose.project": "p", "com.docker.compose.service": "migrate"}
    return Container("id1", "p_migrate_1", state, "", exit_code, 0, "img", labels)


@pytest.mark.parametrize(
    ("containers", "verdict"),
    [
        ([], "wait"),
        ([job("created")], "wait"),
        ([job("running")], "wait"),
        ([job("exited", 0)], "good"),
        ([job("exited", 2)], "fatal"),
    ],
)
def test_a_job_is_done_when_it_exited_zero(containers, verdict):
    assert judge_completed(containers, "migrate")[0] == verdict
