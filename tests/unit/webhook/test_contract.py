"""The names the shim shares with the collection: its copies (podops_webhook/services.py) are the core's.

The shim imports nothing of the collection in broker mode (it runs unprivileged and reads no repo), so it
keeps copies; this test is what keeps them one concept.
"""

from __future__ import annotations

from ansible_collections.podops.gitops.plugins.module_utils import _common, _report, _state
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceFiles
from podops_webhook import services


def test_the_shims_names_are_the_collections():
    assert services.SERVICE_NAME_RE.pattern == _common.SERVICE_NAME_RE.pattern
    assert services.RUN_ID_RE.pattern == _report.RUN_ID_RE.pattern
    assert (services.LABEL_SERVICE, services.LABEL_PREFIX) == (_common.LABEL_SERVICE, _common.LABEL_PREFIX)
    assert services.SLOTS == _state.SLOTS


def test_the_shim_reads_the_files_the_engine_writes():
    assert services.STATE_FILE == _state.STATE_FILE
    assert services.LAST_RUN_FILE == _report.LAST_RUN


def test_the_shims_marker_is_where_the_collection_keeps_it():
    assert services.marker_path("/var/lib/podops", "webhook") == ServiceFiles("/var/lib/podops", "webhook").marker
