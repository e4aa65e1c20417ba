# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_plan's checks one by one: service folders, containers made by hand, drift, undecryptable vault files,
and a plan without orphans (a redeploy)."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project
from ansible_collections.podops.gitops.plugins.module_utils._digest import Secrets, file_map
from ansible_collections.podops.gitops.plugins.module_utils._plan import (
    ServiceSpec,
    check_vault_files,
    drift_reason,
    find_squatters,
    foreign_owner,
    list_services,
    make_plan,
)
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceRecord

VAULT = "$ANSIBLE_VAULT;1.1;AES256\n6161616161\n"

SHOP_COMPOSE = """\
services:
  web: {image: nginx}
  db: {image: postgres, container_name: shop-db}
  migrate: {image: busybox}
  debug: {image: busybox, profiles: [debug]}
x-podops:
  oneshot: [migrate]
"""


@pytest.fixture
def shop(tmp_path, write_tree, monkeypatch):
    """The spec of a service ``shop`` (project ``t1shop``): web, db (container_name shop-db), oneshot migrate, debug profile."""
    monkeypatch.delenv("DB_NAME", raising=False)
    write_tree(tmp_path / "repo", {"services/shop/compose.yaml": SHOP_COMPOSE})
    service_dir = str(tmp_path / "repo" / "services" / "shop")
    return ServiceSpec(name="shop", rel_dir="services/shop", service_dir=service_dir, project_name="t1shop", project=load_project(service_dir, environ={}))


# --- list_services ---------------------------------------------------------------------------------------------


def test_list_services_names_and_warnings(tmp_path, write_tree):
    write_tree(
        tmp_path / "stacks",
        {
            "web/compose.yaml": "services: {x: {image: x}}\n",
            "db/docker-compose.yml": "services: {x: {image: x}}\n",
            "Bad Name/compose.yaml": "services: {x: {image: x}}\n",
            "-dash/compose.yaml": "services: {x: {image: x}}\n",
            "notes/todo.txt": "no compose file\n",
            ".hidden/compose.yaml": "services: {x: {image: x}}\n",
            "README.md": "one folder per service\n",
        },
    )

    names, warnings = list_services(str(tmp_path / "stacks") + "/")

    assert names == ["db", "web"]
    assert warnings == [
        "stacks/-dash ignored: a service folder name may use letters, digits, '.', '_' and '-'",
        "stacks/Bad Name ignored: a service folder name may use letters, digits, '.', '_' and '-'",
        "stacks/notes ignored: it has no compose file",
    ]


def test_list_services_of_a_missing_folder(tmp_path):
    with pytest.raises(PodopsError) as err:
        list_services(str(tmp_path / "services"))

    assert str(err.value).startswith(f"the services folder {tmp_path / 'services'} does not exist; nothing was changed. Point podops_repo_dir at ")


# --- find_squatters --------------------------------------------------------------------------------------------


def test_find_squatters(shop, make_container):
    ours = make_container("t1shop", "web", "a" * 64, "shop")
    by_hand = make_container("t1shop", "db", "a" * 64, "shop")
    by_hand.name, by_hand.labels = "shop-db", {}  # podman run --name shop-db ...
    other_project = make_container("blog", "debug", "a" * 64, "blog")
    other_project.name = "t1shop_debug_1"  # a profile service: up does not start it, so no clash
    stray = make_container("t1shop", "web", "a" * 64, "shop")
    stray.name, stray.labels = "t1shop_web_2", {}

    by_name = {c.name: c for c in (ours, by_hand, other_project, stray)}

    assert find_squatters(shop, by_name) == ["shop-db"]
    assert find_squatters(shop, {}) == []
    shop.project = None
    assert find_squatters(shop, by_name) == []


def test_container_of_another_project_under_our_default_name_is_a_squatter(shop, make_container):
    squatter = make_container("legacy", "web", "a" * 64, "legacy")
    squatter.name = "t1shop_migrate_1"

    assert find_squatters(shop, {squatter.name: squatter}) == ["t1shop_migrate_1"]


# --- foreign_owner (issue 14) ---------------------------------------------------------------------------------


def test_a_container_name_held_by_another_owners_podops_container_is_refused_naming_it(shop, make_container):
    other = make_container("staging-api", "db", "a" * 64, "api", prefix="staging-")
    other.name = "shop-db"
    shop.squatters = ["shop-db"]

    error = foreign_owner(shop, {"shop-db": other}, {}, "t1")

    assert error == (
        "container_name 'shop-db' is taken by a container podops deployed for another owner: service 'api' with project prefix "
        "'staging-', compose project staging-api, commit 000000000000. A container name is global on the host: give this service "
        "another container_name (or remove it from one of the env repos). Nothing was changed."
    )


def test_a_container_name_held_by_this_state_folders_own_old_project_or_by_hand_is_taken_over(shop, make_container):
    renamed = make_container("t1oldshop", "db", "a" * 64, "oldshop", prefix="t1")
    renamed.name = "shop-db"
    shop.squatters = ["shop-db"]
    assert foreign_owner(shop, {"shop-db": renamed}, {"oldshop": ServiceRecord.from_dict({"project": "t1oldshop"})}, "t1") is None
    by_hand = make_container("x", "db", "a" * 64)
    by_hand.name, by_hand.labels = "shop-db", {}
    assert foreign_owner(shop, {"shop-db": by_hand}, {}, "t1") is None
    # Same service name and prefix, but another state folder deployed it (another env repo): refused.
    twin = make_container("t1shop-other", "db", "a" * 64, "shop", prefix="t1")
    twin.name = "shop-db"
    assert "another owner: service 'shop'" in foreign_owner(shop, {"shop-db": twin}, {}, "t1")


# --- drift_reason ------------------------------------------------------------------------------------------------

DIGEST = "d" * 64


def healthy_shop(make_container):
    return [
        make_container("t1shop", "web", DIGEST, "shop"),
        make_container("t1shop", "db", DIGEST, "shop"),
        make_container("t1shop", "migrate", DIGEST, "shop", state="exited", exit_code=0),
    ]


def test_no_drift_when_every_started_service_runs_and_the_oneshot_finished(shop, make_container):
    assert drift_reason(shop, DIGEST, healthy_shop(make_container)) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("squatters", "container(s) shop-db, t1shop_web_1 were replaced by hand"),
        ("only squatters", "container(s) shop-db, t1shop_web_1 were replaced by hand"),  # podman run --name: no project labels
        ("none", "no container is running"),
        ("unlabelled", "container t1shop_db_1 was not started by podops"),
        ("other digest", "container t1shop_db_1 runs another version"),
        ("stopped", "container t1shop_web_1 is stopped"),
        ("oneshot failed", "container t1shop_migrate_1 is exited"),
        ("oneshot missing", "compose service(s) migrate have no container"),
        ("two missing", "compose service(s) db, migrate have no container"),
    ],
)
def test_drift_reason(shop, make_container, change, why):
    containers = healthy_shop(make_container)
    if change in ("squatters", "only squatters"):
        shop.squatters = ["shop-db", "t1shop_web_1"]
        containers = containers if change == "squatters" else []
    elif change == "none":
        containers = []
    elif change == "unlabelled":
        containers[1].labels = {k: v for k, v in containers[1].labels.items() if k != "io.podops.digest"}
    elif change == "other digest":
        containers[1].labels["io.podops.digest"] = "e" * 64
    elif change == "stopped":
        containers[0].state = "stopped"
    elif change == "oneshot failed":
        containers[2].exit_code = 1
    elif change == "oneshot missing":
        containers = containers[:2]
    elif change == "two missing":
        containers = containers[:1]

    assert drift_reason(shop, DIGEST, containers) == why


def test_drift_reason_without_a_compose_model_checks_only_the_containers(shop, make_container):
    shop.project = None
    web = make_container("t1shop", "web", DIGEST, "shop")
    migrate_done = make_container("t1shop", "migrate", DIGEST, "shop", state="exited", exit_code=0)

    assert drift_reason(shop, DIGEST, [web]) is None  # no model: nothing says db must run
    assert drift_reason(shop, DIGEST, [migrate_done]) == "container t1shop_migrate_1 is exited"  # nor that migrate is a oneshot


# --- check_vault_files -------------------------------------------------------------------------------------------


@pytest.fixture
def vault_service(tmp_path, write_tree):
    """A service folder with four vault files (two in ../../secrets), a plain env file and a compose file."""
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "services/web/compose.yaml": "services: {web: {image: nginx}}\n",
            "services/web/a.env": VAULT,
            "services/web/b.env": VAULT,
            "services/web/plain.env": "A=1\n",
            "secrets/c.env": VAULT,
            "secrets/d.env": VAULT,
        },
    )
    service_dir = str(repo / "services" / "web")
    spec = ServiceSpec(name="web", rel_dir="services/web", service_dir=service_dir, project_name="web")
    rel = ["compose.yaml", "a.env", "b.env", "plain.env"]
    always = [("../../secrets/c.env", str(repo / "secrets" / "c.env"), True), ("../../secrets/d.env", str(repo / "secrets" / "d.env"), True)]

    def digest(secrets):
        spec.files = file_map(service_dir, rel, always, secrets=secrets)
        return spec

    return repo, digest


def test_check_vault_files_groups_files_by_error(vault_service):
    repo, digest = vault_service
    secrets = Secrets(
        plaintexts={str(repo / "secrets" / "d.env"): "D=1\n"},
        errors={
            str(repo / "services/web/a.env"): "Decryption failed (no vault secrets were found that could decrypt)",
            str(repo / "services/web/b.env"): "Decryption failed (no vault secrets were found that could decrypt)",
        },
        provided=True,
    )
    spec = digest(secrets)

    with pytest.raises(PodopsError) as err:
        check_vault_files(spec, secrets)

    assert str(err.value) == (
        "cannot decrypt ../../secrets/c.env: it was not decrypted (no vault password given?); "
        "cannot decrypt a.env, b.env: Decryption failed (no vault secrets were found that could decrypt)"
    )
    assert spec.vault_files == [os.path.realpath(repo / rel) for rel in ("secrets/c.env", "secrets/d.env", "services/web/a.env", "services/web/b.env")]


def test_check_vault_files_before_the_controller_answered_only_notes_them(vault_service):
    repo, digest = vault_service
    secrets = Secrets()
    spec = digest(secrets)

    check_vault_files(spec, secrets)

    assert [os.path.relpath(path, os.path.realpath(repo)) for path in spec.vault_files] == [
        "secrets/c.env",
        "secrets/d.env",
        "services/web/a.env",
        "services/web/b.env",
    ]


def test_check_vault_files_with_every_plaintext_passes(vault_service):
    repo, digest = vault_service
    paths = [repo / "services/web/a.env", repo / "services/web/b.env", repo / "secrets/c.env", repo / "secrets/d.env"]
    secrets = Secrets(plaintexts={str(path): "X=1\n" for path in paths}, provided=True)
    spec = digest(secrets)

    check_vault_files(spec, secrets)

    assert len(spec.vault_files) == 4
    assert secrets.found == {}


def test_plan_fails_a_service_whose_vault_file_cannot_be_decrypted(vault_service, runner):
    repo, _digest = vault_service
    (repo / "services/web/compose.yaml").write_text("services: {web: {image: nginx, env_file: [a.env, ../../secrets/c.env]}}\n")
    secrets = Secrets(errors={str(repo / "services/web/a.env"): "wrong password"}, provided=True)

    plan = make_plan(runner, str(repo), "services", {}, [], secrets=secrets)

    item = plan.items["web"]
    assert (item.action, item.reason) == ("failed", "invalid")
    assert item.error == "cannot decrypt ../../secrets/c.env, b.env: it was not decrypted (no vault password given?); cannot decrypt a.env: wrong password"


# --- make_plan without orphans -----------------------------------------------------------------------------------


def test_plan_without_orphans_reports_only_the_repo_services(shop, tmp_path, runner, make_container):
    state = {"gone": ServiceRecord.from_dict({"project": "gone", "digest": "a" * 64, "files": {}, "status": "ok"})}
    live = [make_container("legacy", "app", "a" * 64, "legacy"), make_container("gone", "app", "a" * 64, "gone")]

    with_orphans = make_plan(runner, str(tmp_path / "repo"), "services", state, live)
    without = make_plan(runner, str(tmp_path / "repo"), "services", state, live, with_orphans=False)

    assert {name: item.action for name, item in with_orphans.items.items()} == {"gone": "orphaned", "legacy": "orphaned", "shop": "deploy"}
    assert {name: item.action for name, item in without.items.items()} == {"shop": "deploy"}
    assert without.would_change(prune=False) is True
    assert sorted(without.live) == ["gone", "legacy"]


def test_a_service_folder_not_committed_yet_is_digested_whole(tmp_path, runner):
    repo = tmp_path / "repo"
    for rel, text in {"services/old/compose.yaml": "services: {a: {image: x}}\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@podops.invalid", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    (repo / "services/new/conf").mkdir(parents=True)
    (repo / "services/new/compose.yaml").write_text("services: {a: {image: x, volumes: ['./conf:/c:ro', './data:/d']}}\n")
    (repo / "services/new/conf/app.conf").write_text("a\n")
    (repo / "services/new/data").mkdir()
    (repo / "services/new/data/db").write_text("written by the service\n")

    plan = make_plan(runner, str(repo), "services", {}, [])

    assert sorted(plan.specs["new"].files) == [".env", "compose.yaml", "conf/app.conf"]
    assert "services/new is not committed to git: all its files are digested until it is" in plan.warnings
    assert sorted(plan.specs["old"].files) == [".env", "compose.yaml"]
