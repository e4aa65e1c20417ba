# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_reconcile.urls: what the summary prints for a service's published ports."""

from __future__ import annotations

import json

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project
from ansible_collections.podops.gitops.plugins.module_utils._plan import ServiceSpec
from ansible_collections.podops.gitops.plugins.module_utils._reconcile import urls


def spec_with(tmp_path, ports, xpodops=None):
    document = {"services": {"dns": {"image": "x", "ports": ports}}}
    if xpodops:
        document["x-podops"] = xpodops
    (tmp_path / "compose.yaml").write_text(json.dumps(document))
    return ServiceSpec("dns", "services/dns", str(tmp_path), "dns", project=load_project(str(tmp_path), environ={}))


@pytest.mark.parametrize(
    ("ports", "xpodops", "expected"),
    [
        (["53:53/udp", "53:53/tcp"], None, ["udp/53", "localhost:53"]),
        (["127.0.0.1:5353:53/udp"], None, ["udp/127.0.0.1:5353"]),
        ([{"target": 53, "published": 53, "protocol": "udp"}], None, ["udp/53"]),
        (["8080:80"], None, ["localhost:8080"]),
        (["127.0.0.1:8080:80", "8443:443/udp"], {"url_scheme": "https"}, ["https://127.0.0.1:8080/", "udp/8443"]),
        (["8080:80"], {"url_scheme": "http"}, ["http://localhost:8080/"]),
        (["80"], {"url_scheme": "http"}, []),
    ],
)
def test_udp_and_non_http_ports_are_no_http_urls(tmp_path, ports, xpodops, expected):
    assert urls(spec_with(tmp_path, ports, xpodops)) == expected


def test_summary_lines_say_what_happened_how_long_it_took_and_what_to_do(tmp_path):
    from ansible_collections.podops.gitops.plugins.module_utils._plan import Plan
    from ansible_collections.podops.gitops.plugins.module_utils._reconcile import Options, Reconciler
    from ansible_collections.podops.gitops.plugins.module_utils._report import service_entry

    def lines(check_mode):
        reconciler = Reconciler(Options(repo_dir=str(tmp_path), state_dir=str(tmp_path / "state")), runner=None, check_mode=check_mode)
        reconciler.services = {
            "web": service_entry("deployed", "changed", duration_s=2.14),
            "db": service_entry("unchanged", "unchanged"),
            "old": service_entry("orphaned", "removed"),
            "api": service_entry(
                "rolled_back",
                "changed",
                error="container api_app_1 exited with code 3",
                duration_s=9.0,
                failure_log={"container": "api_app_1", "lines": ["boom"], "healthcheck": None},
            ),
        }
        return reconciler.summary(Plan(commit=None, items={}, specs={}, live={}))

    assert lines(False) == [
        "api: rolled_back (changed, 9.0s) - container api_app_1 exited with code 3",
        "  last 1 log line(s) of api_app_1 (before the rollback):",
        "  | boom",
        "db: unchanged",
        "old: orphaned (removed) - still running: set podops_prune=true to remove its containers (volumes are kept)",
        "web: deployed (changed, 2.1s)",
    ]
    assert "web: would deploy (changed, 2.1s)" in lines(True)
