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
