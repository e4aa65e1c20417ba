# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a compose project reads and runs beyond its folder: images, container names, secrets/configs,
extends, include and ``../`` bind mounts - and how the plan digests them from a real git checkout."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _plan
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project
from ansible_collections.podops.gitops.plugins.module_utils._plan import ServiceSpec, make_plan, referenced_files
from ansible_collections.podops.gitops.plugins.module_utils._state import ServiceRecord


def project_of(tmp_path, write_tree, compose, files=None, environ=None):
    """``load_project`` of ``<tmp_path>/repo/services/web`` with ``compose.yaml`` and ``files`` (relative to the repo)."""
    repo = tmp_path / "repo"
    write_tree(repo, {"services/web/compose.yaml": compose, **(files or {})})
    return load_project(str(repo / "services" / "web"), environ=environ if environ is not None else {})


# --- images, container names, builds, pods --------------------------------------------------------------------


def test_service_images_are_interpolated_and_skip_built_services(tmp_path, write_tree):
    compose = """\
services:
  web: {image: "${REGISTRY:-docker.io}/library/nginx:${TAG}"}
  app: {image: localhost/app:dev, build: .}
  tool: {build: {context: tool}}
  db: {image: docker.io/library/postgres:16}
  cache: {image: docker.io/library/postgres:16}
"""
    project = project_of(tmp_path, write_tree, compose, {"services/web/.env": "TAG=1.25\n"})

    assert project.service_images(environ={}) == {
        "web": "docker.io/library/nginx:1.25",
        "db": "docker.io/library/postgres:16",
        "cache": "docker.io/library/postgres:16",
    }
    assert project.service_images(environ={"REGISTRY": "quay.io", "TAG": "2"})["web"] == "quay.io/library/nginx:2"


def test_container_names_default_fixed_and_profiles(tmp_path, write_tree):
    compose = """\
services:
  app: {image: app}
  db: {image: postgres, container_name: "${DB_NAME:-shop-db}"}
  debug: {image: busybox, profiles: [debug], container_name: debugger}
"""
    project = project_of(tmp_path, write_tree, compose)

    assert project.container_names("t1shop", environ={}) == {"app": "t1shop_app_1", "db": "shop-db"}
    assert project.container_names("shop", environ={"DB_NAME": "prod-db"}) == {"app": "shop_app_1", "db": "prod-db"}


@pytest.mark.parametrize(
    ("services", "builds"),
    [
        ("{web: {image: nginx}, db: {image: postgres}}", False),
        ("{web: {image: nginx}, app: {build: .}}", True),
        ("{app: {image: 'localhost/app:dev', build: {context: app}}}", True),
        ("{app: {image: 'localhost/app:dev', build: ''}}", False),
    ],
)
def test_builds(tmp_path, write_tree, services, builds):
    assert project_of(tmp_path, write_tree, f"services: {services}\n").builds is builds


@pytest.mark.parametrize(
    ("extra", "pod_setting"),
    [
        ("", False),
        ("x-podman: {in_pod: false}\n", True),
        ("x-podman: {in_pod: true}\n", True),
        ("x-podman: {default_net_behavior_compat: true}\n", False),
        ("x-podman: in_pod\n", False),
    ],
)
def test_pod_setting(tmp_path, write_tree, extra, pod_setting):
    assert project_of(tmp_path, write_tree, "services: {web: {image: nginx}}\n" + extra).pod_setting is pod_setting


# --- referenced_paths -----------------------------------------------------------------------------------------

REFERENCING_COMPOSE = """\
secrets:
  token: {file: ../../secrets/token.txt}
  managed: {external: true}
configs:
  nginx: {file: ./conf/nginx.conf}
  env: {environment: NGINX_CONF}
include:
  - ../../common/base.yaml
  - path: [../../common/a.yaml, ../../common/b.yaml]
  - path: ../../common/c.yaml
    project_directory: ../../common
services:
  app:
    image: nginx
    extends: {file: ../../common/base.yaml, service: base}
    volumes:
      - ../../shared/conf:/etc/conf:ro
      - ./data:/data
      - .:/srv/app
      - /srv/host-data:/host
      - named:/var/lib/named
      - type: bind
        source: ../../shared/certs
        target: /certs
      - type: bind
        source: ./inside
        target: /inside
      - type: bind
        source: /srv/abs
        target: /abs
      - type: volume
        source: named
        target: /named
  worker:
    image: nginx
    extends: {file: "${COMMON}/worker.yaml", service: worker}
    volumes:
      - ${SHARED}/scripts:/scripts
      - type: bind
        source: ${SHARED}/keys
        target: /keys
      - ../../shared/conf:/etc/conf:ro
volumes:
  named: {}
"""


def test_referenced_paths_lists_config_files_and_outside_binds(tmp_path, write_tree):
    files = {"secrets/token.txt": "s3cret\n", "shared/conf/app.conf": "x", "shared/certs/cert.pem": "x", "services/web/.env": "COMMON=../../common\n"}
    files.update({f"common/{name}.yaml": "services: {}\n" for name in ("a", "b", "c", "base")})
    project = project_of(tmp_path, write_tree, REFERENCING_COMPOSE, files, environ={"SHARED": "../../shared"})
    repo = str(tmp_path / "repo")

    paths = project.referenced_paths(environ={"SHARED": "../../shared"})

    assert paths == [
        ("../../secrets/token.txt", f"{repo}/secrets/token.txt", False, "config"),
        ("./conf/nginx.conf", f"{repo}/services/web/conf/nginx.conf", False, "config"),
        ("../../common/base.yaml", f"{repo}/common/base.yaml", False, "config"),
        ("../../common/a.yaml", f"{repo}/common/a.yaml", False, "config"),
        ("../../common/b.yaml", f"{repo}/common/b.yaml", False, "config"),
        ("../../common/c.yaml", f"{repo}/common/c.yaml", False, "config"),
        ("../../shared/conf", f"{repo}/shared/conf", True, "bind"),
        ("../../shared/certs", f"{repo}/shared/certs", True, "bind"),
        ("../../common/worker.yaml", f"{repo}/common/worker.yaml", False, "config"),
        ("../../shared/scripts", f"{repo}/shared/scripts", False, "bind"),
        ("../../shared/keys", f"{repo}/shared/keys", False, "bind"),
    ]


def test_referenced_paths_of_a_self_contained_project_is_empty(tmp_path, write_tree):
    compose = """\
services:
  app:
    image: nginx
    volumes: ["./conf:/etc/nginx/conf.d:ro", "data:/data", "/srv/x:/x", {type: bind, source: ./y, target: /y}, {type: tmpfs, target: /tmp}]
volumes: {data: {}}
"""
    assert project_of(tmp_path, write_tree, compose).referenced_paths(environ={}) == []


def test_referenced_paths_with_variables_from_dotenv(tmp_path, write_tree):
    compose = "secrets: {token: {file: '${SECRETS}/token.txt'}}\nservices: {app: {image: nginx, volumes: ['${DATA}:/data']}}\n"
    project = project_of(tmp_path, write_tree, compose, {"services/web/.env": "SECRETS=../../secrets\nDATA=/srv/data\n"})
    repo = str(tmp_path / "repo")

    assert project.referenced_paths(environ={}) == [("../../secrets/token.txt", f"{repo}/secrets/token.txt", False, "config")]
    assert project.referenced_paths(environ={"DATA": "../../shared/data"}) == [
        ("../../secrets/token.txt", f"{repo}/secrets/token.txt", False, "config"),
        ("../../shared/data", f"{repo}/shared/data", False, "bind"),
    ]


def test_referenced_paths_short_bind_with_a_default_value(tmp_path, write_tree):
    compose = "services: {app: {image: nginx, volumes: ['${SHARED:-../../shared}/conf:/etc/conf:ro']}}\n"
    project = project_of(tmp_path, write_tree, compose)

    assert project.referenced_paths(environ={}) == [("../../shared/conf", str(tmp_path / "repo" / "shared" / "conf"), False, "bind")]


# --- referenced_files: what the plan digests ------------------------------------------------------------------

SHARED_COMPOSE = """\
secrets:
  token: {file: ../../secrets/token.txt}
configs:
  nginx: {file: ../../configs/nginx}
services:
  app:
    image: nginx
    volumes: ["../../shared/conf:/etc/conf:ro", "../../../outside:/outside", "./data:/data"]
"""


@pytest.fixture
def shared_repo(tmp_path, git_repo, write_tree):
    """An env repo whose web service mounts ``../../shared/conf`` (two tracked files) and reads an untracked
    secret and an untracked configs folder; ``shared/conf/local.conf`` is untracked, the service's data too."""
    repo = git_repo(
        tmp_path / "repo",
        {
            ".gitignore": "secrets/\nconfigs/\nshared/conf/local.conf\nservices/*/data/\n",
            "services/web/compose.yaml": SHARED_COMPOSE,
            "shared/conf/a.conf": "a\n",
            "shared/conf/sub/b.conf": "b\n",
            "shared/unmounted.conf": "not mounted\n",
        },
    )
    write_tree(
        repo,
        {
            "secrets/token.txt": "s3cret\n",
            "configs/nginx/default.conf": "server {}\n",
            "configs/nginx/extra/gzip.conf": "gzip on;\n",
            "shared/conf/local.conf": "host-local\n",
            "services/web/data/db.sqlite": "live data",
        },
    )
    write_tree(tmp_path, {"outside/file": "outside the repo\n"})
    return repo


def spec_of(repo, name="web"):
    service_dir = os.path.join(repo, "services", name)
    return ServiceSpec(name=name, rel_dir=f"services/{name}", service_dir=service_dir, project_name=name, project=load_project(service_dir, environ={}))


def test_referenced_files_in_git(shared_repo, runner):
    repo = shared_repo

    entries = referenced_files(spec_of(repo), runner, repo, True)

    assert entries == [
        ("../../secrets/token.txt", f"{repo}/secrets/token.txt", True),  # a secret's file must exist
        ("../../configs/nginx/default.conf", f"{repo}/configs/nginx/default.conf", False),  # files of a config folder
        ("../../configs/nginx/extra/gzip.conf", f"{repo}/configs/nginx/extra/gzip.conf", False),
        ("../../shared/conf/a.conf", f"{repo}/shared/conf/a.conf", False),
        ("../../shared/conf/sub/b.conf", f"{repo}/shared/conf/sub/b.conf", False),
    ]
    assert runner.calls == [["git", "-c", f"safe.directory={os.path.realpath(repo)}", "-C", repo, "ls-files", "-z", "--cached", "--", "shared/conf"]]


def test_referenced_files_outside_git_leave_binds_out(shared_repo, runner):
    entries = referenced_files(spec_of(shared_repo), runner, shared_repo, False)

    assert [key for key, _path, _required in entries] == ["../../secrets/token.txt", "../../configs/nginx/default.conf", "../../configs/nginx/extra/gzip.conf"]
    assert runner.calls == []


def test_referenced_folder_with_too_many_files_is_an_error(shared_repo, runner, write_tree, monkeypatch):
    monkeypatch.setattr(_plan, "MAX_FOLDER_FILES", 3)
    spec = spec_of(shared_repo)
    assert len(referenced_files(spec, runner, shared_repo, False)) == 3  # two config files and the secret: at the limit

    write_tree(shared_repo, {"configs/nginx/third.conf": "x", "configs/nginx/fourth.conf": "x"})
    with pytest.raises(PodopsError) as err:
        referenced_files(spec, runner, shared_repo, False)

    assert str(err.value) == (
        "../../configs/nginx (mounted by the compose file) holds more than 3 files; podops digests what a service reads "
        "from outside its folder. Mount data folders by absolute path, or move the files into the service folder."
    )


def test_referenced_folder_with_too_many_files_fails_only_its_service(shared_repo, runner, write_tree, monkeypatch):
    assert _plan.MAX_FOLDER_FILES == 2000
    monkeypatch.setattr(_plan, "MAX_FOLDER_FILES", 1)
    write_tree(shared_repo, {"services/db/compose.yaml": "services: {db: {image: postgres}}\n"})

    plan = make_plan(runner, shared_repo, "services", {}, [])

    item = plan.items["web"]
    assert (item.action, item.reason) == ("failed", "invalid")
    assert item.error.startswith("../../configs/nginx (mounted by the compose file) holds more than 1 files; ")
    assert (plan.items["db"].action, plan.items["db"].reason) == ("deploy", "new")


def test_plan_digests_tracked_files_of_a_shared_bind_and_every_config_file(shared_repo, runner, git, write_tree):
    first = make_plan(runner, shared_repo, "services", {}, [])
    files = first.specs["web"].files

    assert sorted(files) == [
        "../../configs/nginx/default.conf",
        "../../configs/nginx/extra/gzip.conf",
        "../../secrets/token.txt",
        "../../shared/conf/a.conf",
        "../../shared/conf/sub/b.conf",
        ".env",
        "compose.yaml",
    ]
    entry = {"project": "web", "service_dir": "services/web", "digest": first.specs["web"].digest, "files": dict(files), "status": "ok"}
    state = {"web": ServiceRecord.from_dict(entry)}

    write_tree(shared_repo, {"shared/conf/local.conf": "changed by the host", "shared/unmounted.conf": "edited", "services/web/data/db.sqlite": "more data"})
    untracked = make_plan(runner, shared_repo, "services", state, [])
    write_tree(shared_repo, {"shared/conf/sub/b.conf": "b2\n", "secrets/token.txt": "rotated\n"})
    tracked = make_plan(runner, shared_repo, "services", state, [])

    assert untracked.specs["web"].digest == first.specs["web"].digest
    assert (tracked.items["web"].reason, tracked.items["web"].changed_files) == ("changed", ["../../secrets/token.txt", "../../shared/conf/sub/b.conf"])


def test_plan_of_a_checkout_without_git_leaves_shared_binds_out(shared_repo, tmp_path, runner):
    plain = tmp_path / "plain"
    shutil.copytree(shared_repo, plain, ignore=shutil.ignore_patterns(".git"))

    plan = make_plan(runner, str(plain), "services", {}, [])

    assert plan.commit is None
    assert sorted(plan.specs["web"].files) == [
        "../../configs/nginx/default.conf",
        "../../configs/nginx/extra/gzip.conf",
        "../../secrets/token.txt",
        ".env",
        "compose.yaml",
    ], "without git, what the service writes into a read-write ./data mount is data, not input"
