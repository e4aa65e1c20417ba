# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_plan: deploy / unchanged / orphaned / failed, with the reason, from a real git checkout."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._digest import digest_of
from ansible_collections.podops.gitops.plugins.module_utils._plan import Plan, PlanItem, make_plan, project_name, select
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceRecord

WEB_COMPOSE = """\
services:
  app:
    image: docker.io/library/nginx:1.27
    ports: ["${HOST_PORT:-1337}:80"]
    volumes: ["./conf:/etc/nginx/conf.d:ro", "./data:/data"]
"""

DB_COMPOSE = """\
services:
  db:
    image: docker.io/library/postgres:16
  migrate:
    image: docker.io/library/busybox:1.36
    command: ["true"]
x-podops:
  order: 10
  oneshot: [migrate]
"""


@pytest.fixture
def repo(tmp_path, git_repo):
    """An env repo: services web and db, a stray README, gitignored secrets and data."""
    return git_repo(
        tmp_path / "env-repo",
        {
            "local.yml": "- import_playbook: podops.gitops.reconcile\n",
            ".gitignore": "secrets/\nservices/*/data/\n",
            "services/README.md": "one folder per service\n",
            "services/web/compose.yaml": WEB_COMPOSE,
            "services/web/conf/app.conf": "listen 80;\n",
            "services/db/podman-compose.yml": DB_COMPOSE,
        },
    )


@pytest.fixture
def plan_of(runner):
    def plan(repo_dir, state=None, containers=(), prefix="", selectors=None, services_dir="services"):
        # ``state`` as state.json holds it; the plan reads it as StateStore.load gives it.
        records = {name: ServiceRecord.from_dict(entry) for name, entry in (state or {}).items()}
        return make_plan(runner, str(repo_dir), services_dir, records, list(containers), prefix, selectors)

    return plan


def recorded(plan, name):
    """The state entry a successful deploy of ``plan``'s version of ``name`` leaves."""
    spec = plan.specs[name]
    return {"project": spec.project_name, "service_dir": spec.rel_dir, "digest": spec.digest, "files": dict(spec.files), "status": "ok", "failed_digest": None}


def running(make_container, plan, name):
    """Containers of ``name`` as podops started them for ``plan``'s version: every service running, oneshots done."""
    spec = plan.specs[name]
    oneshot = spec.project.settings.oneshot
    return [
        make_container(spec.project_name, svc, spec.digest, name, state="exited" if svc in oneshot else "running") for svc in spec.project.started_services()
    ]


# --- names and selection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "service", "compose_name", "expected"),
    [
        ("", "web", None, "web"),
        ("t1", "web", None, "t1web"),
        ("", "Web.App", None, "webapp"),
        ("", "web", "My Shop", "myshop"),
        ("ci-", "web", "shop_v2", "ci-shop_v2"),
        ("", "web", "!!!", "podops"),
    ],
)
def test_project_name(prefix, service, compose_name, expected):
    assert project_name(prefix, service, compose_name) == expected


def test_select():
    names = ["db", "web", "web-admin"]

    assert select(names, None) == ({"db", "web", "web-admin"}, [])
    assert select(names, []) == ({"db", "web", "web-admin"}, [])
    assert select(names, ["web"]) == ({"web"}, [])
    assert select(names, ["web*", "db"]) == ({"db", "web", "web-admin"}, [])
    assert select(names, ["x?", "web"]) == ({"web"}, ["podops_services pattern 'x?' matches no service"])


# --- new / unchanged / changed ---------------------------------------------------------------------------


def test_new_services_are_deployed(repo, git, plan_of, runner):
    plan = plan_of(repo)

    web = plan.specs["web"]
    assert list(plan.items) == ["db", "web"]
    assert plan.items["web"].as_dict() == {
        "action": "deploy",
        "reason": "new",
        "project": "web",
        "digest": web.digest,
        "previous_digest": None,
        "changed_files": ["compose.yaml", "conf/app.conf"],  # not the .env that does not exist
        "error": None,
    }
    assert plan.items["db"].changed_files == ["podman-compose.yml"]
    assert web.digest == digest_of(web.files)
    assert web.files[".env"] == "missing"
    assert (web.rel_dir, web.service_dir) == ("services/web", os.path.join(repo, "services", "web"))
    assert plan.commit == git(repo, "rev-parse", "HEAD").strip()
    assert plan.would_change(prune=False) is True
    assert plan.warnings == []
    assert [argv for argv in runner.calls if "ls-files" in argv] == [
        ["git", "-c", f"safe.directory={os.path.realpath(repo)}", "-C", repo, "ls-files", "-z", "--cached", "--", "services"]
    ]


def test_deployed_and_running_services_are_unchanged(repo, plan_of, make_container):
    first = plan_of(repo)
    state = {name: recorded(first, name) for name in ("db", "web")}
    live = running(make_container, first, "web") + running(make_container, first, "db")

    plan = plan_of(repo, state, live)

    assert {name: (item.action, item.reason) for name, item in plan.items.items()} == {"db": ("unchanged", "unchanged"), "web": ("unchanged", "unchanged")}
    assert plan.items["web"].previous_digest == plan.items["web"].digest == first.specs["web"].digest
    assert plan.items["web"].changed_files == []
    assert plan.would_change(prune=False) is False and plan.would_change(prune=True) is False


def test_edited_tracked_file_is_a_change(repo, plan_of, make_container):
    first = plan_of(repo)
    state = {name: recorded(first, name) for name in ("db", "web")}
    live = running(make_container, first, "web") + running(make_container, first, "db")
    with open(os.path.join(repo, "services/web/conf/app.conf"), "w") as handle:
        handle.write("listen 8080;\n")

    plan = plan_of(repo, state, live)

    web = plan.items["web"]
    assert (web.action, web.reason, web.changed_files) == ("deploy", "changed", ["conf/app.conf"])
    assert web.previous_digest == first.specs["web"].digest
    assert web.digest != web.previous_digest
    assert (plan.items["db"].action, plan.items["db"].reason) == ("unchanged", "unchanged")


def test_committed_new_and_removed_files_are_changes(repo, git, write_tree, plan_of, make_container):
    first = plan_of(repo)
    state = {"web": recorded(first, "web")}
    write_tree(repo, {"services/web/conf/extra.conf": "gzip on;\n"})
    git(repo, "add", "-A")
    git(repo, "rm", "-q", "services/web/conf/app.conf")
    git(repo, "commit", "-q", "-m", "swap conf")

    plan = plan_of(repo, state, running(make_container, first, "web"))

    assert (plan.items["web"].action, plan.items["web"].reason) == ("deploy", "changed")
    assert plan.items["web"].changed_files == ["conf/app.conf", "conf/extra.conf"]
    assert plan.commit == git(repo, "rev-parse", "HEAD").strip()


def test_service_that_failed_with_this_digest_is_retried(repo, plan_of, make_container):
    first = plan_of(repo)
    old = dict(recorded(first, "web"), digest="0" * 64)
    failed_now = dict(old, status="failed", failed_digest=first.specs["web"].digest, error="not healthy after 60s")
    failed_before = dict(old, status="failed", failed_digest="1" * 64)

    assert (plan_of(repo, {"web": failed_now}).items["web"].action, plan_of(repo, {"web": failed_now}).items["web"].reason) == ("deploy", "retry")
    assert plan_of(repo, {"web": failed_before}).items["web"].reason == "changed"


def test_never_deployed_service_that_failed_is_retried(repo, plan_of):
    first = plan_of(repo)
    failed = {"project": "web", "service_dir": "services/web", "digest": None, "files": {}, "status": "failed"}
    state = {"web": dict(failed, failed_digest=first.specs["web"].digest)}

    item = plan_of(repo, state).items["web"]

    assert (item.action, item.reason, item.previous_digest) == ("deploy", "retry", None)
    assert item.changed_files == sorted(rel for rel, entry in first.specs["web"].files.items() if entry != "missing")


def test_never_deployed_service_changed_since_its_failure_is_not_a_retry(repo, plan_of):
    state = {"web": {"project": "web", "service_dir": "services/web", "digest": None, "files": {}, "status": "failed", "failed_digest": "1" * 64}}

    assert plan_of(repo, state).items["web"].reason == "new"


# --- drift and adoption -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "change", "why"),
    [
        ("web", "none", "no container is running"),
        ("web", "other digest", "container web_app_1 runs another version"),
        ("web", "exited", "container web_app_1 is exited"),
        ("db", "oneshot failed", "container db_migrate_1 is exited"),
        ("db", "missing service", "compose service(s) migrate have no container"),
        ("web", "made by hand", "container(s) web_app_1 were replaced by hand"),
        ("web", "compose by hand", "container web_app_1 was not started by podops"),
    ],
)
def test_drift_is_redeployed(repo, plan_of, make_container, service, change, why):
    first = plan_of(repo)
    spec = first.specs[service]
    containers = running(make_container, first, service)
    if change == "none":
        containers = []
    elif change == "other digest":
        containers = [make_container("web", "app", "f" * 64, "web")]
    elif change == "exited":
        containers = [make_container("web", "app", spec.digest, "web", state="exited", exit_code=137)]
    elif change == "oneshot failed":
        containers = [make_container("db", "db", spec.digest, "db"), make_container("db", "migrate", spec.digest, "db", state="exited", exit_code=1)]
    elif change == "missing service":
        containers = [make_container("db", "db", spec.digest, "db")]
    elif change == "made by hand":  # podman rm -f web_app_1; podman run --name web_app_1 ...
        by_hand = make_container("web", "app", spec.digest, "web")
        by_hand.labels = {}
        containers = [by_hand]
    elif change == "compose by hand":  # podman-compose up in the folder, without podops' labels
        by_hand = make_container("web", "app", spec.digest, "web")
        by_hand.labels = {k: v for k, v in by_hand.labels.items() if not k.startswith("io.podops.")}
        containers = [by_hand]

    item = plan_of(repo, {service: recorded(first, service)}, containers).items[service]

    assert (item.action, item.reason, item.error) == ("deploy", "drift", why)
    assert item.digest == item.previous_digest == spec.digest
    assert item.changed_files == []


def test_running_service_with_the_current_digest_but_no_state_is_adopted(repo, plan_of, make_container):
    first = plan_of(repo)

    plan = plan_of(repo, {}, running(make_container, first, "web"))

    assert (plan.items["web"].action, plan.items["web"].reason) == ("unchanged", "adopted")
    assert (plan.items["db"].action, plan.items["db"].reason) == ("deploy", "new")


def test_running_service_with_another_digest_and_no_state_is_new(repo, plan_of, make_container):
    plan = plan_of(repo, {}, [make_container("web", "app", "f" * 64, "web")])

    assert (plan.items["web"].action, plan.items["web"].reason) == ("deploy", "new")


def test_project_prefix_and_compose_name(repo, write_tree, plan_of, make_container):
    write_tree(repo, {"services/web/compose.yaml": "name: ${STACK:-Shop}\n" + WEB_COMPOSE})
    first = plan_of(repo, prefix="t1")
    spec = first.specs["web"]
    live = [make_container("t1shop", "app", spec.digest, "web", prefix="t1")]

    plan = plan_of(repo, {"web": recorded(first, "web")}, live, prefix="t1")

    assert first.items["web"].project_name == spec.project_name == "t1shop"
    assert first.items["db"].project_name == "t1db"
    assert (plan.items["web"].action, plan.items["web"].reason) == ("unchanged", "unchanged")


# --- orphans ------------------------------------------------------------------------------------------------------


def test_service_that_left_the_repo_is_orphaned(repo, plan_of):
    state = {
        "gone": {"project": "gone-project", "digest": "a" * 64, "files": {}, "status": "ok"},
        "never-ran": {"digest": None, "files": {}},  # no digest, no project: nothing of it can be running
    }

    plan = plan_of(repo, state)

    assert list(plan.items) == ["db", "gone", "web"]
    assert plan.items["gone"] == PlanItem(name="gone", action="orphaned", reason="removed", project_name="gone-project", previous_digest="a" * 64)
    assert plan.would_change(prune=False) is True  # db and web are new


def test_an_orphan_changes_something_only_when_it_is_pruned():
    """service_plan's changed says what a run's verdict would: a kept orphan changes nothing (compose_deploy --check
    agrees), a pruned one does."""
    orphan = PlanItem(name="gone", action="orphaned", reason="removed", project_name="gone")
    unchanged = PlanItem(name="web", action="unchanged", reason="unchanged", project_name="web")
    plan = Plan(commit=None, items={"gone": orphan, "web": unchanged}, specs={}, live={})

    assert plan.would_change(prune=False) is False
    assert plan.would_change(prune=True) is True


def test_labelled_project_without_state_is_orphaned(repo, plan_of, make_container):
    live = [make_container("legacy", "app", "a" * 64, "legacy"), make_container("other", "app", "a" * 64, "other", prefix="t1")]

    plan = plan_of(repo, {}, live)

    assert plan.items["legacy"] == PlanItem(name="legacy", action="orphaned", reason="removed", project_name="legacy")
    assert "other" not in plan.items  # another prefix: another tenant's containers


def test_deselected_service_is_orphaned_only_when_it_was_deployed(repo, plan_of):
    first = plan_of(repo)

    with_db = plan_of(repo, {"db": recorded(first, "db")}, selectors=["web"])
    without_db = plan_of(repo, {}, selectors=["web"])

    assert {name: (item.action, item.reason) for name, item in with_db.items.items()} == {"db": ("orphaned", "deselected"), "web": ("deploy", "new")}
    assert with_db.items["db"].project_name == "db"
    assert list(without_db.items) == ["web"]
    assert list(without_db.specs) == ["web"]


def test_selector_naming_an_unknown_service_is_an_error(repo, plan_of):
    with pytest.raises(PodopsError) as err:
        plan_of(repo, selectors=["web", "wbe"])

    assert str(err.value) == "podops_services names 'wbe', which is not a service of this env repo. Services: db, web"


def test_glob_selector_matching_nothing_is_a_warning(repo, plan_of):
    plan = plan_of(repo, selectors=["w*", "zz*"])

    assert list(plan.items) == ["web"]
    assert plan.warnings == ["podops_services pattern 'zz*' matches no service"]


# --- the repo as a whole -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [{}, {"README.md": "x", ".gitkeep": "", "notes": None}])
def test_services_folder_without_services_changes_nothing(tmp_path, write_tree, plan_of, content):
    (tmp_path / "repo" / "services").mkdir(parents=True)
    for name, text in content.items():
        if text is None:
            (tmp_path / "repo" / "services" / name).mkdir()
        else:
            write_tree(tmp_path / "repo" / "services", {name: text})

    with pytest.raises(PodopsError) as err:
        plan_of(tmp_path / "repo", {"web": {"digest": "a" * 64, "project": "web"}})

    assert f"the services folder {tmp_path / 'repo' / 'services'} holds no service" in str(err.value)
    assert "Nothing was changed" in str(err.value)


def test_missing_services_folder_changes_nothing(tmp_path, plan_of):
    (tmp_path / "repo").mkdir()

    with pytest.raises(PodopsError) as err:
        plan_of(tmp_path / "repo")

    assert str(err.value).startswith(f"the services folder {tmp_path / 'repo' / 'services'} does not exist; nothing was changed.")


def test_missing_repo_dir(tmp_path, plan_of):
    with pytest.raises(PodopsError, match="podops_repo_dir .* does not exist"):
        plan_of(tmp_path / "nope")


def test_stray_entries_under_services_are_ignored(repo, write_tree, plan_of):
    write_tree(
        repo,
        {
            "services/notes/todo.txt": "no compose file here",
            "services/bad name/compose.yaml": "services: {x: {image: x}}\n",
            "services/.hidden/compose.yaml": "services: {x: {image: x}}\n",
            "services/stray.yml": "services: {x: {image: x}}\n",
        },
    )

    plan = plan_of(repo)

    assert list(plan.items) == ["db", "web"]
    assert plan.warnings == [
        "services/bad name ignored: a service folder name may use letters, digits, '.', '_' and '-'",
        "services/notes ignored: it has no compose file",
    ]


def test_invalid_service_fails_alone(repo, write_tree, git, plan_of):
    write_tree(repo, {"services/broken/compose.yaml": "services:\n  web:\n\timage: nginx\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken")

    plan = plan_of(repo)

    broken = plan.items["broken"]
    assert (broken.action, broken.reason) == ("failed", "invalid")
    assert broken.error.startswith("invalid YAML in compose.yaml line 3, column 1: ")
    assert broken.digest == digest_of(plan.specs["broken"].files) and list(plan.specs["broken"].files) == ["compose.yaml"]
    assert {name: plan.items[name].action for name in ("db", "web")} == {"db": "deploy", "web": "deploy"}


def test_missing_required_env_file_fails_the_service(repo, write_tree, plan_of):
    write_tree(repo, {"services/web/compose.yaml": WEB_COMPOSE + "    env_file: ../../secrets/web.env\n"})

    item = plan_of(repo).items["web"]

    assert (item.action, item.reason) == ("failed", "invalid")
    assert item.error == (
        f"a file the compose file reads does not exist: ../../secrets/web.env ({os.path.join(repo, 'secrets', 'web.env')}); "
        "create it (an env_file entry can be marked 'required: false')"
    )


def test_a_required_variable_without_a_value_fails_only_its_service(repo, write_tree, plan_of):
    write_tree(repo, {"services/web/compose.yaml": "services:\n  web:\n    image: nginx\n    container_name: ${WEB_NAME:?set WEB_NAME in .env}\n"})

    plan = plan_of(repo)

    item = plan.items["web"]
    assert (item.action, item.reason) == ("failed", "invalid")
    assert item.error == "required variable WEB_NAME is missing a value: set WEB_NAME in .env"
    assert plan.items["db"].action == "deploy", "the other services are planned as usual"


def test_every_missing_file_compose_reads_is_named_at_once_each_path_once(repo, write_tree, plan_of):
    compose = (
        "include: [db.yaml]\n"
        "secrets:\n  token: {file: /nonexistent/podops/token}\n  key: {file: ./key.pem}\n"
        "configs:\n  app: {file: ../../configs/app.conf}\n"
        "services:\n"
        "  web:\n    image: nginx\n    env_file: [../../secrets/web.env, {path: optional.env, required: false}]\n    secrets: [token, key]\n"
        "  worker:\n    image: nginx\n    env_file: ../../secrets/web.env\n"
        "  base:\n    extends: {file: ../common.yml, service: base}\n"
    )
    write_tree(repo, {"services/web/compose.yaml": compose})

    item = plan_of(repo).items["web"]

    assert (item.action, item.reason) == ("failed", "invalid"), "planned as failed, never as deploy"
    service_dir = os.path.join(repo, "services", "web")
    assert item.error == (
        "6 files the compose file reads do not exist: "
        f"../../secrets/web.env ({os.path.join(repo, 'secrets', 'web.env')}), "
        "/nonexistent/podops/token, "
        f"key.pem ({os.path.join(service_dir, 'key.pem')}), "
        f"../../configs/app.conf ({os.path.join(repo, 'configs', 'app.conf')}), "
        f"db.yaml ({os.path.join(service_dir, 'db.yaml')}), "
        f"../common.yml ({os.path.join(repo, 'services', 'common.yml')}); "
        "create them (an env_file entry can be marked 'required: false')"
    )


def test_unreadable_env_file_path_fails_only_its_service(repo, write_tree, plan_of):
    write_tree(repo, {"secrets": "a file, not a folder", "services/web/compose.yaml": WEB_COMPOSE + "    env_file: ../../secrets/web.env\n"})

    plan = plan_of(repo)

    assert (plan.items["web"].action, plan.items["db"].action) == ("failed", "deploy")


# --- what the digest covers --------------------------------------------------------------------------------------


def test_untracked_junk_does_not_change_the_digest_but_an_untracked_env_does(repo, write_tree, plan_of, make_container):
    first = plan_of(repo)
    state = {"web": recorded(first, "web")}
    live = running(make_container, first, "web")
    write_tree(repo, {"services/web/junk.log": "x", "services/web/conf/notes.txt": "x", "services/web/data/db.sqlite": "x"})

    junk = plan_of(repo, state, live)
    write_tree(repo, {"services/web/.env": "HOST_PORT=8080\n"})
    dotenv = plan_of(repo, state, live)

    assert (junk.items["web"].action, junk.items["web"].digest) == ("unchanged", first.specs["web"].digest)
    assert (dotenv.items["web"].action, dotenv.items["web"].reason, dotenv.items["web"].changed_files) == ("deploy", "changed", [".env"])
    assert dotenv.specs["web"].project.published_ports(environ={}) == ["8080"]


def test_gitignored_env_file_outside_the_folder_is_part_of_the_digest(repo, write_tree, plan_of, make_container):
    write_tree(repo, {"secrets/web.env": "TOKEN=1\n", "services/web/compose.yaml": WEB_COMPOSE + "    env_file: ../../secrets/web.env\n"})
    first = plan_of(repo)
    write_tree(repo, {"secrets/web.env": "TOKEN=2\n"})

    plan = plan_of(repo, {"web": recorded(first, "web")}, running(make_container, first, "web"))

    assert (plan.items["web"].action, plan.items["web"].changed_files) == ("deploy", ["../../secrets/web.env"])


def test_env_file_written_with_dot_slash_is_one_file(repo, git, write_tree, plan_of, make_container):
    write_tree(repo, {"services/web/app.env": "A=1\n", "services/web/compose.yaml": WEB_COMPOSE + "    env_file: ./app.env\n"})
    git(repo, "add", "-A")
    first = plan_of(repo)
    write_tree(repo, {"services/web/app.env": "A=2\n"})

    plan = plan_of(repo, {"web": recorded(first, "web")}, running(make_container, first, "web"))

    assert plan.items["web"].changed_files == ["app.env"]


def test_x_podops_ignore_leaves_files_out(repo, git, write_tree, plan_of, make_container):
    write_tree(repo, {"services/web/README.md": "v1", "services/web/compose.yaml": WEB_COMPOSE + "x-podops:\n  ignore: ['*.md']\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docs")
    first = plan_of(repo)
    write_tree(repo, {"services/web/README.md": "v2"})
    git(repo, "commit", "-q", "-am", "docs again")

    plan = plan_of(repo, {"web": recorded(first, "web")}, running(make_container, first, "web"))

    assert "README.md" not in first.specs["web"].files
    assert (plan.items["web"].action, plan.items["web"].reason) == ("unchanged", "unchanged")


def test_env_repo_that_is_not_a_git_checkout_uses_every_file(repo, tmp_path, plan_of):
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    (plain / "services" / "web" / "junk.log").write_text("x")

    plan = plan_of(plain)

    assert plan.commit is None
    assert sorted(plan.specs["web"].files) == [".env", "compose.yaml", "conf/app.conf", "junk.log"]


def test_plan_writes_nothing(repo, git, write_tree, plan_of, make_container):
    write_tree(repo, {"services/web/junk.log": "x"})
    first = plan_of(repo)
    before = (git(repo, "status", "--porcelain", "--ignored"), sorted(os.walk(repo)))

    plan_of(repo, {"web": recorded(first, "web"), "gone": {"digest": "a" * 64}}, running(make_container, first, "db"))

    assert (git(repo, "status", "--porcelain", "--ignored"), sorted(os.walk(repo))) == before


def test_two_services_with_one_project_name_fail(repo, write_tree, plan_of):
    write_tree(repo, {"services/web2/compose.yaml": "name: web\n" + WEB_COMPOSE})

    plan = plan_of(repo)

    error = plan.items["web2"].error or ""
    assert plan.items["web2"].action == "failed"
    assert "project" in error
    assert "web" in error.replace("web2", "")  # names the service it collides with
