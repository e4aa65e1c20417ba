# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_state.ServiceRecord: state.json's entry of a service, read and written with the same content, and the
transitions the engine makes. The expected dicts are the entries podops wrote before the record existed
(the dict literals and ``.update(...)`` calls of ``_reconcile.py``): state.json must not change."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _reconcile, _state
from ansible_collections.podops.gitops.plugins.module_utils._plan import ServiceSpec
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceRecord, StateStore

NOW = "2026-12-01T19:30:00Z"
DIGEST = "ab" * 32
NEW_DIGEST = "cd" * 32

# The entry of a deployed service as state.json holds it (every key _record_success wrote).
DEPLOYED = {
    "images": {"app": "sha256:" + "1" * 64},
    "vault_keys": ["app.env"],
    "project": "t1web",
    "service_dir": "services/web",
    "compose_file": "compose.yaml",
    "strategy": None,
    "base_project": "t1web",
    "digest": DIGEST,
    "files": {"compose.yaml": "f:00", "app.env": "f:01"},
    "commit": "c" * 40,
    "deployed_at": "2026-11-30T08:00:00Z",
    "status": "ok",
    "failed_digest": None,
    "error": None,
}


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setattr(_state, "utcnow", lambda: NOW)


# --- reading and writing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        DEPLOYED,
        {"project": "web", "service_dir": "services/web", "digest": None, "files": {}, "status": "failed", "failed_digest": DIGEST, "failed_at": NOW},
        {"digest": DIGEST, "status": "ok"},  # an older podops wrote fewer keys: none is added
        {},
    ],
    ids=["deployed", "first failure", "older file", "empty"],
)
def test_a_record_writes_back_exactly_what_it_read(entry):
    assert ServiceRecord.from_dict(entry).to_dict() == entry


def test_keys_a_newer_podops_wrote_survive_a_load_and_a_save(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    unknown = {"pinned": {"app": "sha256:" + "2" * 64}, "notes": ["kept"], "extra": "a key named like the field"}
    newer = {**DEPLOYED, **unknown}
    content = json.dumps({"version": 1, "services": {"web": newer, "db": {"digest": None, "future": 1}}})
    (state_dir / "state.json").write_text(content)
    store = StateStore(str(state_dir))

    records = store.load()
    store.save(records)

    assert records["web"].digest == DIGEST and records["web"].extra == unknown
    assert json.loads((state_dir / "state.json").read_text()) == json.loads(content)


def test_an_empty_entry_is_no_record_as_the_dict_was():
    assert not ServiceRecord.from_dict({})
    assert ServiceRecord.from_dict({"future": 1})
    assert ServiceRecord.from_dict({"digest": None})


# --- transitions -------------------------------------------------------------------------------------------


def web_spec(tmp_path, digest=DIGEST, live_project=""):
    service_dir = str(tmp_path / "repo" / "services" / "web")
    return ServiceSpec(
        name="web",
        rel_dir="services/web",
        service_dir=service_dir,
        project_name="t1web",
        files={"compose.yaml": "f:00", "app.env": "f:01"},
        digest=digest,
        vault_files=[os.path.realpath(os.path.join(service_dir, "app.env"))],
        live_project=live_project,
    )


def test_deployed_is_the_entry_a_deploy_wrote():
    record = ServiceRecord.deployed(
        project="t1web",
        service_dir="services/web",
        digest=DIGEST,
        files={"compose.yaml": "f:00"},
        images={"app": "sha256:" + "1" * 64},
        vault_keys=("app.env",),
        compose_file="compose.yaml",
        strategy="blue-green",
        base_project="t1web",
        commit="c" * 40,
    )

    assert record.to_dict() == {
        "images": {"app": "sha256:" + "1" * 64},
        "vault_keys": ["app.env"],
        "project": "t1web",
        "service_dir": "services/web",
        "compose_file": "compose.yaml",
        "strategy": "blue-green",
        "base_project": "t1web",
        "digest": DIGEST,
        "files": {"compose.yaml": "f:00"},
        "commit": "c" * 40,
        "deployed_at": NOW,
        "status": "ok",
        "failed_digest": None,
        "error": None,
    }


def test_the_engine_records_a_deploy_or_an_adoption_of_a_spec(tmp_path):
    record = _reconcile._record_success(web_spec(tmp_path, live_project="t1web-b"), "c" * 40, None)

    # What _record_success wrote for a spec without a compose model: no images yet, the slot serving.
    assert record.to_dict() == {
        "images": {},
        "vault_keys": ["app.env"],
        "project": "t1web-b",
        "service_dir": "services/web",
        "compose_file": None,
        "strategy": None,
        "base_project": "t1web",
        "digest": DIGEST,
        "files": {"compose.yaml": "f:00", "app.env": "f:01"},
        "commit": "c" * 40,
        "deployed_at": NOW,
        "status": "ok",
        "failed_digest": None,
        "error": None,
    }


def test_a_first_failure_is_recorded_without_a_good_version(tmp_path):
    record = _reconcile._record_failure(None, web_spec(tmp_path), "image x could not be pulled")

    assert record.to_dict() == {
        "project": "t1web",
        "service_dir": "services/web",
        "digest": None,
        "files": {},
        "status": "failed",
        "failed_digest": DIGEST,
        "error": "image x could not be pulled",
        "failed_at": NOW,
    }


def test_a_failure_after_a_good_version_keeps_it(tmp_path):
    before = ServiceRecord.from_dict({**DEPLOYED, "future": 1})

    record = _reconcile._record_failure(before, web_spec(tmp_path, digest=NEW_DIGEST), "container web-1 exited with code 3")

    failure = {"status": "failed", "failed_digest": NEW_DIGEST, "error": "container web-1 exited with code 3", "failed_at": NOW}
    assert record.to_dict() == {**DEPLOYED, "future": 1, **failure}
    assert before.to_dict() == {**DEPLOYED, "future": 1}, "a transition gives a new record; the run's 'before' stays as it was"


@pytest.mark.parametrize("images", [{"app": "sha256:" + "3" * 64}, None], ids=["new images", "images unknown"])
def test_fresh_images_that_run(images):
    record = ServiceRecord.from_dict({**DEPLOYED, "status": "failed", "error": "old"}).image_refreshed(images)

    assert record.to_dict() == {**DEPLOYED, "images": images or DEPLOYED["images"], "status": "ok", "error": None, "deployed_at": NOW}


@pytest.mark.parametrize("images", [{"app": "sha256:" + "1" * 64}, None], ids=["previous images back", "images unknown"])
def test_fresh_images_that_failed(images):
    record = ServiceRecord.from_dict(DEPLOYED).image_refresh_failed(images, "new image for app failed: unhealthy")

    # No failed_digest: the version did not fail, its new images did.
    failure = {"status": "failed", "error": "new image for app failed: unhealthy", "failed_at": NOW}
    assert record.to_dict() == {**DEPLOYED, "images": images or DEPLOYED["images"], **failure}


def test_a_failure_that_is_over_heals_without_a_new_timestamp():
    failed = {**DEPLOYED, "status": "failed", "failed_digest": NEW_DIGEST, "error": "x", "failed_at": NOW}

    assert ServiceRecord.from_dict(failed).healed().to_dict() == {**failed, "status": "ok", "error": None, "failed_digest": None}
