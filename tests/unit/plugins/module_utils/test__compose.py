# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_compose: the parts of a compose project podops reads, and the errors a user sees."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from ansible_collections.podops.gitops.plugins.module_utils import _compose
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._compose import (
    EnvFileRef,
    ParsedCompose,
    Settings,
    find_compose_file,
    interpolate,
    load_project,
    parse_dotenv,
)

# --- interpolate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A}", {}, ""),
        ("$A", {"A": "1"}, "1"),
        ("$A/b", {"A": "1"}, "1/b"),
        ("$A_B", {"A": "x", "A_B": "y"}, "y"),
        ("${A}_B", {"A": "x", "A_B": "y"}, "x_B"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A:-d}", {"A": "set"}, "set"),
        ("${A-d}", {}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {"A": "set"}, "set"),
        ("${A:+x}", {"A": "1"}, "x"),
        ("${A:+x}", {"A": ""}, ""),
        ("${A:+x}", {}, ""),
        ("${A+x}", {"A": ""}, "x"),
        ("${A+x}", {}, ""),
        ("$$", {}, "$"),
        ("$$A", {"A": "1"}, "$A"),
        ("$${A}", {"A": "1"}, "${A}"),
        ("echo $$HOME", {"HOME": "/root"}, "echo $HOME"),
        ("${HOST_PORT:-1337}:80", {}, "1337:80"),
        ("${REGISTRY:-docker.io}/library/nginx:${TAG:-1.27}", {"TAG": "1.25"}, "docker.io/library/nginx:1.25"),
        ("no variables: 100%", {"A": "1"}, "no variables: 100%"),
        ("${A:-with space}", {}, "with space"),
    ],
)
def test_interpolate(text, variables, expected):
    assert interpolate(text, variables) == expected


# The compose-spec's own examples (12-interpolation.md), with VAR/FOO set, empty and unset.
SPEC_ENV = {"SET": "value", "EMPTY": "", "FOO": "foo", "ERPNEXT_VERSION": "v15.1.0"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "value"),
        ("$SET", "value"),
        ("${UNSET}", ""),
        ("${SET:-default}", "value"),
        ("${EMPTY:-default}", "default"),
        ("${UNSET:-default}", "default"),
        ("${SET-default}", "value"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${SET:?error}", "value"),
        ("${EMPTY?error}", ""),
        ("${SET:+replacement}", "replacement"),
        ("${EMPTY:+replacement}", ""),
        ("${UNSET:+replacement}", ""),
        ("${SET+replacement}", "replacement"),
        ("${EMPTY+replacement}", "replacement"),
        ("${UNSET+replacement}", ""),
        # nesting, as in the spec: ${VARIABLE:-${FOO}}, ${VARIABLE?$FOO}, ${VARIABLE:-${FOO:-default}}
        ("${UNSET:-${FOO}}", "foo"),
        ("${SET:-${FOO}}", "value"),
        ("${SET?$FOO}", "value"),
        ("${UNSET:-${UNSET2:-default}}", "default"),
        ("${UNSET:-${FOO:-default}}", "foo"),
        ("${SET:+${FOO}-x}", "foo-x"),
        # frappe_docker: image: frappe/erpnext:${CUSTOM_TAG:-$ERPNEXT_VERSION}
        ("frappe/erpnext:${CUSTOM_TAG:-$ERPNEXT_VERSION}", "frappe/erpnext:v15.1.0"),
        ("${CUSTOM_TAG:-$ERPNEXT_VERSION}-${SET}", "v15.1.0-value"),
        # $$ is a literal $; a $ that starts no variable stays
        ('command: "$$VAR_NOT_INTERPOLATED_BY_COMPOSE"', 'command: "$VAR_NOT_INTERPOLATED_BY_COMPOSE"'),
        ("price is $5", "price is $5"),
        ("trailing $", "trailing $"),
        ("${UNSET:-$$}", "$"),
        ("${UNSET:-}", ""),
        ("${UNSET:-{x}}", "{x}"),
    ],
)
def test_interpolate_spec_examples(text, expected):
    assert interpolate(text, SPEC_ENV) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?set UNSET in .env}", "required variable UNSET is missing a value: set UNSET in .env"),
        ("${EMPTY:?no empty}", "required variable EMPTY is missing a value: no empty"),
        ("${UNSET?need $FOO}", "required variable UNSET is missing a value: need foo"),
        ("${SET:-${UNSET:?inner}}", None),  # an operand that is not used is not evaluated
        ("${VARIABLE/foo/bar}", "invalid interpolation ${VARIABLE/foo/bar}: compose knows only"),
        ("${}", "invalid interpolation format ${}: write $$ for a literal $"),
        ("${1A}", "invalid interpolation format ${1A}"),
        ("${A:-x", "no closing brace"),
    ],
)
def test_interpolate_errors(text, message):
    if message is None:
        assert interpolate(text, SPEC_ENV) == "value"
        return
    with pytest.raises(PodopsError) as err:
        interpolate(text, SPEC_ENV)
    assert message in str(err.value)


# --- parse_dotenv ---------------------------------------------------------------------------------------


def test_parse_dotenv():
    text = (
        "# a comment\n"
        "\n"
        "export A=1\n"
        "B = two words  \n"
        'C="quoted # not a comment"\n'
        "D='single'\n"
        "E=value # trailing comment\n"
        "F=\n"
        "G=a=b\n"
        "   # indented comment\n"
        "this line is not an assignment\n"
        "H=abc#def\n"
        'I="it\'s"\n'
        "dotted.key-name=ok\n"
        "A=2\n"
    )

    assert parse_dotenv(text) == {
        "A": "2",
        "B": "two words",
        "C": "quoted # not a comment",
        "D": "single",
        "E": "value",
        "F": "",
        "G": "a=b",
        "H": "abc#def",
        "I": "it's",
        "dotted.key-name": "ok",
    }


DOTENV_WITH_VARIABLES = (
    "BASE=/srv/app\n"
    "DATA=${BASE}/data\n"
    'QUOTED="${BASE}/q"\n'
    "SINGLE='${BASE}/s'\n"
    "FROM_ENV=${HOST_VALUE}/x\n"
    "DEFAULTED=${NOT_SET:-fallback}\n"
    "EMPTY=\n"
    "EMPTY_DEFAULT=${EMPTY:-fallback}\n"
    "SHADOW=${HOST_VALUE}\n"
    "HOST_VALUE=from-file\n"
    "AFTER=${HOST_VALUE}\n"
)


def test_parse_dotenv_expands_variables_like_python_dotenv(tmp_path, monkeypatch):
    """podman-compose reads .env with python-dotenv's dotenv_values: the same text gives the same values."""
    dotenv = pytest.importorskip("dotenv")
    monkeypatch.setenv("HOST_VALUE", "from-env")
    monkeypatch.delenv("NOT_SET", raising=False)
    (tmp_path / ".env").write_text(DOTENV_WITH_VARIABLES)

    theirs = dotenv.dotenv_values(str(tmp_path / ".env"))
    ours = parse_dotenv(DOTENV_WITH_VARIABLES, dict(os.environ))

    assert ours == theirs
    assert ours["DATA"] == "/srv/app/data" and ours["SINGLE"] == "/srv/app/s" and ours["AFTER"] == "from-file"
    assert parse_dotenv("A=${B}\n") == {"A": "${B}"}, "without an environment nothing is expanded"


def test_parse_dotenv_quoted_value_with_inline_comment():
    assert parse_dotenv("TAG=\"1.2\" # pinned\nNAME='shop'  # the stack\n") == {"TAG": "1.2", "NAME": "shop"}


# --- load_project ----------------------------------------------------------------------------------------


def write_compose(folder, text, name="compose.yaml"):
    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def compose_from(folder, document):
    """Compose file from a Python structure (JSON is YAML), for the cases where the shape is the point."""
    return write_compose(folder, json.dumps(document))


def test_find_compose_file_prefers_podman_compose_and_knows_every_name(tmp_path):
    assert find_compose_file(str(tmp_path)) is None
    for name in ("docker-compose.yaml", "docker-compose.yml", "compose.yml", "compose.yaml", "podman-compose.yaml", "podman-compose.yml"):
        write_compose(tmp_path, "services: {}", name)
        assert find_compose_file(str(tmp_path)) == str(tmp_path / name)


def test_load_project_without_compose_file_names_the_accepted_names(tmp_path):
    with pytest.raises(PodopsError) as err:
        load_project(str(tmp_path), environ={})

    assert str(tmp_path) in str(err.value)
    assert "podman-compose.yml" in str(err.value)
    assert "compose.yaml" in str(err.value)


def test_load_project_reads_a_typical_service(tmp_path):
    compose = write_compose(
        tmp_path / "web",
        """\
name: ${STACK:-shop}
services:
  web:
    image: docker.io/library/nginx:${TAG:-1.27}
    container_name: shop-web
    ports: ["${HOST_PORT:-1337}:80"]
    env_file: app.env
    depends_on:
      db: {condition: service_healthy}
    volumes: ["./conf:/etc/nginx/conf.d:ro", "data:/data"]
  db:
    image: docker.io/library/postgres@sha256:0000000000000000000000000000000000000000000000000000000000000000
    healthcheck: {test: ["CMD", "pg_isready"], interval: 2s}
volumes:
  data: {}
networks:
  back: {}
""",
    )
    (tmp_path / "web" / ".env").write_text("STACK=blog\nTAG=1.25\n")

    project = load_project(str(tmp_path / "web"), environ={})

    assert project.compose_file == compose
    assert project.name == "blog"
    assert list(project.services) == ["web", "db"]
    assert project.dotenv == {"STACK": "blog", "TAG": "1.25"}
    assert project.settings == Settings()
    assert project.started_services() == ["web", "db"]
    assert project.images(environ={}) == [
        "docker.io/library/nginx:1.25",
        "docker.io/library/postgres@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]
    assert project.published_ports(environ={}) == ["1337"]
    assert project.env_files == [
        EnvFileRef(".env", str(tmp_path / "web" / ".env"), False),
        EnvFileRef("app.env", str(tmp_path / "web" / "app.env"), True),
    ]


def test_environment_wins_over_dotenv(tmp_path):
    write_compose(tmp_path, "name: ${STACK}\nservices: {web: {image: 'nginx:${TAG}', ports: ['${PORT}:80']}}\n")
    (tmp_path / ".env").write_text("STACK=blog\nTAG=1\nPORT=8080\n")

    project = load_project(str(tmp_path), environ={"STACK": "prod", "TAG": "2"})

    assert project.name == "prod"
    assert project.images(environ={"TAG": "3"}) == ["nginx:3"]
    assert project.images(environ={}) == ["nginx:1"]
    assert project.published_ports(environ={"PORT": "9090"}) == ["9090"]


def test_project_without_top_level_name(tmp_path):
    write_compose(tmp_path, "services: {web: {image: nginx}}\n")

    assert load_project(str(tmp_path), environ={}).name is None


def test_dotenv_is_always_listed_even_when_absent(tmp_path):
    write_compose(tmp_path, "services: {web: {image: nginx}}\n")

    assert load_project(str(tmp_path), environ={}).env_files == [EnvFileRef(".env", str(tmp_path / ".env"), False)]


def test_env_file_forms_and_paths_outside_the_folder(tmp_path):
    service_dir = tmp_path / "repo" / "services" / "web"
    compose_from(
        service_dir,
        {
            "services": {
                "web": {"image": "nginx", "env_file": ["podman-compose.env", "../../secrets/web.env"]},
                "worker": {"image": "busybox", "env_file": [{"path": "../../secrets/optional.env", "required": False}, {"path": "conf/w.env"}]},
                "cron": {"image": "busybox", "env_file": "${ENV_DIR:-conf}/cron.env"},
            }
        },
    )

    project = load_project(str(service_dir), environ={})

    secrets = str(tmp_path / "repo" / "secrets")
    assert project.env_files == [
        EnvFileRef(".env", str(service_dir / ".env"), False),
        EnvFileRef("podman-compose.env", str(service_dir / "podman-compose.env"), True),
        EnvFileRef("../../secrets/web.env", os.path.join(secrets, "web.env"), True),
        EnvFileRef("../../secrets/optional.env", os.path.join(secrets, "optional.env"), False),
        EnvFileRef("conf/w.env", str(service_dir / "conf" / "w.env"), True),
        EnvFileRef("conf/cron.env", str(service_dir / "conf" / "cron.env"), True),
    ]


def test_env_file_required_by_one_service_is_required(tmp_path):
    compose_from(
        tmp_path,
        {
            "services": {
                "a": {"image": "x", "env_file": [{"path": "shared.env", "required": False}]},
                "b": {"image": "x", "env_file": "shared.env"},
                "c": {"image": "x", "env_file": [{"path": "shared.env", "required": False}]},
                "d": {"image": "x", "env_file": ".env"},
            }
        },
    )

    assert load_project(str(tmp_path), environ={}).env_files == [
        EnvFileRef(".env", str(tmp_path / ".env"), True),
        EnvFileRef("shared.env", str(tmp_path / "shared.env"), True),
    ]


@pytest.mark.parametrize(
    ("env_file", "message"),
    [
        (42, "compose.yaml: services.web.env_file must be a path or a list of paths"),
        ([{"required": False}], "compose.yaml: services.web.env_file entry {'required': False} has no 'path'"),
    ],
)
def test_bad_env_file(tmp_path, env_file, message):
    compose_from(tmp_path, {"services": {"web": {"image": "nginx", "env_file": env_file}}})

    with pytest.raises(PodopsError) as err:
        load_project(str(tmp_path), environ={})

    assert str(err.value) == message


def test_images_skip_built_services_and_repeat_none(tmp_path):
    compose_from(
        tmp_path,
        {
            "services": {
                "app": {"build": ".", "image": "localhost/app:dev"},
                "web": {"image": "${REG:-docker.io}/nginx:1"},
                "web2": {"image": "docker.io/nginx:1"},
                "tool": {"build": {"context": "tool"}},
                "db": {"image": "postgres:16"},
            }
        },
    )

    assert load_project(str(tmp_path), environ={}).images(environ={}) == ["docker.io/nginx:1", "postgres:16"]


def test_started_services_leave_out_profiles(tmp_path):
    compose_from(tmp_path, {"services": {"web": {"image": "x"}, "debug": {"image": "x", "profiles": ["debug"]}, "db": {"image": "x"}}})

    assert load_project(str(tmp_path), environ={}).started_services() == ["web", "db"]


PROFILED = {
    "x-podops": {},
    "services": {
        "web": {"image": "web:1", "env_file": "web.env"},
        "debug": {"image": "debug:1", "profiles": ["debug"], "env_file": "debug.env", "secrets": ["debug_token"], "ports": ["9999:80"]},
        "metrics": {"image": "metrics:1", "profiles": ["monitoring", "all"], "env_file": [{"path": "metrics.env", "required": True}]},
    },
    "secrets": {"debug_token": {"file": "/etc/debug.token"}, "unused": {"file": "./unused.txt"}},
}


def profiled(tmp_path, dotenv="", xpodops=None, environ=None):
    document = json.loads(json.dumps(PROFILED))
    document["x-podops"] = xpodops or {}
    compose_from(tmp_path, document)
    (tmp_path / ".env").write_text(dotenv)
    return load_project(str(tmp_path), environ=environ or {})


def test_services_of_inactive_profiles_count_for_nothing(tmp_path):
    project = profiled(tmp_path)

    assert project.profiles == [] and list(project.inactive) == ["debug", "metrics"]
    assert project.started_services() == ["web"]
    assert project.images() == ["web:1"], "no image is pre-pulled for a service up never starts"
    assert [ref.ref for ref in project.env_files] == [".env", "web.env"], "their env files are not required"
    assert [ref for ref, *_rest in project.referenced_paths()] == ["./unused.txt"], "a secret only they use is not an input"
    assert project.published_ports() == []


@pytest.mark.parametrize(
    ("dotenv", "xpodops", "environ", "active"),
    [
        ("COMPOSE_PROFILES=debug\n", None, {}, ["debug"]),
        ("COMPOSE_PROFILES=debug, monitoring\n", None, {}, ["debug", "monitoring"]),
        ("COMPOSE_PROFILES=debug\n", None, {"COMPOSE_PROFILES": "monitoring"}, ["monitoring"]),  # the environment wins, as in compose
        ("", {"profiles": ["monitoring"]}, {}, ["monitoring"]),
        ("COMPOSE_PROFILES=debug\n", {"profiles": "monitoring"}, {}, ["debug", "monitoring"]),  # both, as podman-compose takes them
    ],
)
def test_active_profiles_from_compose_profiles_and_x_podops(tmp_path, dotenv, xpodops, environ, active):
    project = profiled(tmp_path, dotenv, xpodops, environ)

    assert project.profiles == active
    services = ["web"] + [name for name, profiles in (("debug", ["debug"]), ("metrics", ["monitoring", "all"])) if set(profiles) & set(active)]
    assert project.started_services() == services
    assert [ref.ref for ref in project.env_files] == [".env", "web.env"] + [f"{name}.env" for name in services[1:]]
    assert project.images() == [f"{name}:1" for name in services]


def test_a_file_whose_services_are_all_inactive_says_how_to_choose(tmp_path):
    compose_from(tmp_path, {"services": {"debug": {"image": "x", "profiles": ["debug"]}}})
    with pytest.raises(PodopsError, match="no service is active.*set COMPOSE_PROFILES in .env or x-podops.profiles"):
        load_project(str(tmp_path), environ={})


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (["8080:80"], ["8080"]),
        (["127.0.0.1:8080:80"], ["127.0.0.1:8080"]),
        (["80"], []),
        ([80], []),
        (["8080:80/udp"], ["8080"]),
        (["[::1]:8080:80"], ["[::1]:8080"]),
        (["8000-8001:80-81"], ["8000-8001"]),
        ([{"target": 80, "published": 8080, "host_ip": "127.0.0.1", "protocol": "tcp"}], ["127.0.0.1:8080"]),
        ([{"target": 80, "published": "8081"}], ["8081"]),
        ([{"target": 80}], []),
        (["${P:-1337}:80"], ["1337"]),
        (["${IP:-0.0.0.0}:${P:-1337}:80"], ["0.0.0.0:1337"]),
        (["8080:80", "8080:80/udp", "9090:90"], ["8080", "9090"]),
    ],
)
def test_published_ports(tmp_path, ports, expected):
    compose_from(tmp_path, {"services": {"web": {"image": "nginx", "ports": ports}}})

    assert load_project(str(tmp_path), environ={}).published_ports(environ={}) == expected


def test_published_ports_from_dotenv(tmp_path):
    write_compose(tmp_path, 'services:\n  web:\n    image: nginx\n    ports:\n      - "${HOST_PORT:-1337}:80"\n')
    (tmp_path / ".env").write_text("HOST_PORT=18080\n")

    assert load_project(str(tmp_path), environ={}).published_ports(environ={}) == ["18080"]


# --- errors a user sees --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('services:\n  web:\n    image: nginx\n    ports:\n      - "8080:80"\n    environment\n      A: b\n', "line 7, column 8"),
        ("services:\n  web:\n\timage: nginx\n", "line 3, column 1"),
        ("services:\n  web:\n    image: [nginx\n", "line 4, column 1"),
    ],
)
def test_invalid_yaml_names_file_and_line(tmp_path, text, where):
    write_compose(tmp_path, text, "podman-compose.yml")

    with pytest.raises(PodopsError) as err:
        load_project(str(tmp_path), environ={})

    assert str(err.value).startswith(f"invalid YAML in podman-compose.yml {where}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "compose.yaml must be a mapping with a 'services:' key"),
        ("- web\n", "compose.yaml must be a mapping with a 'services:' key"),
        ("version: '3'\n", "compose.yaml has no services: add a 'services:' mapping with at least one service"),
        ("services: {}\n", "compose.yaml has no services: add a 'services:' mapping with at least one service"),
        ("services: {web: nginx}\n", "compose.yaml: services.web must be a mapping"),
        ("services: {web: {ports: ['80:80']}}\n", "compose.yaml: services.web needs an 'image:' (or a 'build:' or 'extends:')"),
    ],
)
def test_invalid_compose_model(tmp_path, text, message):
    write_compose(tmp_path, text)

    with pytest.raises(PodopsError) as err:
        load_project(str(tmp_path), environ={})

    assert str(err.value) == message


# --- x-podops ------------------------------------------------------------------------------------------------


def project_with(tmp_path, xpodops):
    compose_from(tmp_path, {"services": {"web": {"image": "nginx"}, "migrate": {"image": "busybox"}}, "x-podops": xpodops})
    return load_project(str(tmp_path), environ={})


def test_x_podops_defaults():
    assert Settings() == Settings(strategy="recreate", health_timeout=60.0, health_samples=2, health_interval=0.5, ignore=[], order=50, oneshot=[])


def test_x_podops_settings_are_read(tmp_path):
    settings = project_with(
        tmp_path,
        {"strategy": "recreate", "health": {"timeout": 5, "samples": 2, "interval": 0}, "ignore": "*.md", "order": 10, "oneshot": ["migrate"]},
    ).settings

    assert settings == Settings(strategy="recreate", health_timeout=5.0, health_samples=2, health_interval=0.0, ignore=["*.md"], order=10, oneshot=["migrate"])


def test_x_podops_partial_health_keeps_other_defaults(tmp_path):
    settings = project_with(tmp_path, {"health": {"timeout": "90"}, "ignore": ["docs/**", "*.md"]}).settings

    assert (settings.health_timeout, settings.health_samples, settings.health_interval) == (90.0, 2, 0.5)
    assert settings.ignore == ["docs/**", "*.md"]


@pytest.mark.parametrize(
    ("xpodops", "fragments"),
    [
        ([1], ["must be a mapping, for example 'x-podops: {order: 10}'"]),
        ({"order": 1, "timeout": 5, "stratgy": "x"}, ["unknown key(s) stratgy, timeout", "known keys: strategy, health, ignore, order, oneshot, slots"]),
        ({"strategy": "rolling"}, [".strategy must be one of recreate, blue-green, not 'rolling'"]),
        ({"slots": {"ports": {"a": 1, "b": 2}}}, [".slots only applies to strategy blue-green"]),
        ({"strategy": "blue-green", "slots": [8081]}, [".slots must be a mapping, for example {ports: {a: 8081, b: 8082}}"]),
        ({"strategy": "blue-green", "slots": {"port": 1}}, [".slots has unknown key(s) port", "known keys: ports, health_url"]),
        ({"strategy": "blue-green", "slots": {"ports": {"a": 8081}}}, [".slots: ports must give one port per slot"]),
        ({"strategy": "blue-green", "slots": {"ports": {"a": 8081, "b": 8081}}}, ["need two different ports"]),
        ({"strategy": "blue-green", "slots": {"ports": {"a": "x", "b": 2}}}, ["port of slot a must be a number from 1 to 65535"]),
        ({"strategy": "blue-green", "slots": {"health_url": "http://127.0.0.1:{port}/"}}, ["health_url use '{port}': give the slots' ports"]),
        ({"strategy": "blue-green", "slots": {"health_url": "127.0.0.1/"}}, ["health_url must be an http(s) URL"]),
        ({"strategy": "blue-green", "slots": {"ports": {"a": 1, "b": 2}, "upstream_file": "up.conf"}}, ["upstream_file must be an absolute path"]),
        ({"strategy": "blue-green", "slots": {"reload_command": ["nginx"]}}, ["reload_command is run after the upstream file is written"]),
        (
            {"strategy": "blue-green", "slots": {"ports": {"a": 1, "b": 2}, "upstream_file": "/u", "reload_command": "nginx -s reload"}},
            ["list of arguments (it runs without a shell)"],
        ),
        ({"strategy": "blue-green", "slots": {"drain": -1}}, [".slots.drain must be a number of seconds >= 0"]),
        (
            {"strategy": "blue-green", "slots": {"ports": {"a": 1, "b": 2}, "upstream_file": "/u", "upstream_template": "{host}"}},
            ["upstream_template may only use {port} and {slot}"],
        ),
        ({"health": 5}, [".health must be a mapping with timeout, samples and interval"]),
        ({"health": {"tmeout": 5}}, [".health has unknown key(s) tmeout", "known keys: timeout, samples, interval"]),
        ({"health": {"timeout": "soon"}}, [".health values must be numbers (seconds, count)", "'soon'"]),
        ({"health": {"samples": [2]}}, [".health values must be numbers"]),
        ({"health": {"timeout": 0}}, [".health needs timeout > 0, samples >= 1 and interval >= 0"]),
        ({"health": {"samples": 0}}, [".health needs timeout > 0, samples >= 1 and interval >= 0"]),
        ({"health": {"interval": -1}}, [".health needs timeout > 0, samples >= 1 and interval >= 0"]),
        ({"ignore": [1]}, [".ignore must be a list of glob patterns such as ['*.md', 'docs/**']"]),
        ({"ignore": {"a": 1}}, [".ignore must be a list of glob patterns"]),
        ({"order": "first"}, [".order must be an integer (lower deploys first), not 'first'"]),
        ({"order": 1.5}, [".order must be an integer (lower deploys first), not 1.5"]),
        ({"order": True}, [".order must be an integer (lower deploys first), not True"]),
        ({"oneshot": ["migrat"]}, [".oneshot must list compose services of this file that may exit with code 0"]),
        ({"oneshot": "migrate"}, [".oneshot must list compose services of this file"]),
        ({"url_scheme": "tcp"}, [".url_scheme must be one of http, https (the summary then prints URLs), not 'tcp'"]),
        ({"profiles": [1]}, [".profiles must be a list of compose profile names such as [monitoring, debug]"]),
        ({"timeouts": 600}, [".timeouts must be a mapping of seconds, for example {pull: 1200, up: 600}"]),
        ({"timeouts": {"upp": 600}}, [".timeouts has unknown key(s) upp", "known keys: pull, up, down, healthcheck, reload"]),
        ({"timeouts": {"up": 0}}, [".timeouts.up must be a number of seconds > 0, not 0"]),
        ({"timeouts": {"pull": "long"}}, [".timeouts.pull must be a number of seconds > 0, not 'long'"]),
    ],
)
def test_x_podops_errors(tmp_path, xpodops, fragments):
    with pytest.raises(PodopsError) as err:
        project_with(tmp_path, xpodops)

    message = str(err.value)
    assert message.startswith("compose.yaml: x-podops")
    for fragment in fragments:
        assert fragment in message


def test_jobs_are_services_others_wait_to_complete_and_oneshot(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        json.dumps(
            {
                "x-podops": {"oneshot": ["seed"]},
                "services": {
                    "web": {"image": "a", "depends_on": {"migrate": {"condition": "service_completed_successfully"}, "db": {"condition": "service_healthy"}}},
                    "worker": {"image": "a", "depends_on": ["db"]},
                    "migrate": {"image": "a", "depends_on": {"db": {"condition": "service_started"}}},
                    "db": {"image": "a"},
                    "seed": {"image": "a"},
                },
            }
        )
    )
    assert load_project(str(tmp_path), environ={}).jobs() == ["seed", "migrate"]


def test_x_podops_timeouts_override_the_defaults(tmp_path):
    settings = project_with(tmp_path, {"timeouts": {"pull": 1200, "up": 600}}).settings

    assert settings.timeouts == {"pull": 1200.0, "up": 600.0, "down": 300.0, "podman": 60.0, "healthcheck": 60.0, "reload": 60.0}
    assert Settings().timeouts["pull"] == 900.0


def test_x_podops_oneshot_with_a_mapping_item_is_a_podops_error(tmp_path):
    with pytest.raises(PodopsError, match="oneshot must list compose services"):
        project_with(tmp_path, {"oneshot": [{"migrate": True}]})


def test_blue_green_settings_make_the_switch_and_the_slot_variables(tmp_path):
    xpodops = {
        "strategy": "blue-green",
        "health": {"timeout": 9, "samples": 3},
        "slots": {"ports": {"a": 8081, "b": 8082}, "upstream_file": "/etc/nginx/up.conf", "reload_command": ["nginx", "-s", "reload"], "drain": 0.5},
    }
    project = project_with(tmp_path, xpodops)
    config = project.settings.switch_config("web")

    assert project.settings.blue_green
    assert (config.name, config.ports, config.health_timeout, config.health_samples, config.drain) == ("web", {"a": 8081, "b": 8082}, 9.0, 3, 0.5)
    assert config.upstream("b") == "server 127.0.0.1:8082;\n"
    assert config.reload_command == ["nginx", "-s", "reload"]
    assert project.settings.slot_env("b") == {"PODOPS_SLOT": "b", "PODOPS_SLOT_PORT": "8082"}


def test_blue_green_refuses_container_name(tmp_path):
    (tmp_path / "compose.yaml").write_text("x-podops: {strategy: blue-green}\nservices:\n  app: {image: x, container_name: web}\n")
    with pytest.raises(PodopsError, match="container_name cannot be used .services app."):
        load_project(str(tmp_path))


def test_slot_variables_interpolate_the_published_port(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "x-podops: {strategy: blue-green, slots: {ports: {a: 8081, b: 8082}}}\nservices:\n  app: {image: x, ports: ['127.0.0.1:${PODOPS_SLOT_PORT}:80']}\n"
    )
    project = load_project(str(tmp_path))
    slot_b = dataclasses.replace(project, slot_env=project.settings.slot_env("b"))

    assert slot_b.published_ports() == ["127.0.0.1:8082"]


# --- unset variables (issue 14) ---------------------------------------------------------------------


def _write(tmp_path, document, dotenv=None):
    (tmp_path / "compose.yaml").write_text(json.dumps(document))
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)


def test_an_unset_variable_is_listed_and_a_default_or_a_value_is_not(tmp_path):
    _write(
        tmp_path,
        {"services": {"web": {"image": "x", "environment": {"A": "${GREETING}", "B": "$$LITERAL", "C": "${SET}", "D": "${OTHER:-d}", "E": "$BARE"}}}},
        "SET=1\n",
    )
    assert load_project(str(tmp_path), environ={}).unset == ["GREETING", "BARE"]


@pytest.mark.parametrize(
    ("ports", "image"),
    [
        (["127.0.0.1:${PORT}:8080"], "x"),
        (["${PORT}:8080"], "x"),
        ([{"target": 8080, "published": "${PORT}"}], "x"),
        (["8080:8080"], "app:${TAG}"),
    ],
)
def test_an_unset_variable_that_empties_a_port_or_a_tag_fails_the_service(tmp_path, ports, image):
    _write(tmp_path, {"services": {"web": {"image": image, "ports": ports}}})
    with pytest.raises(PodopsError, match=r"compose.yaml: services\.web\.(ports|image) .* is invalid once interpolated: (PORT|TAG) is not set"):
        load_project(str(tmp_path), environ={})


def test_an_unset_variable_in_a_port_with_a_value_from_dotenv_is_fine(tmp_path):
    _write(tmp_path, {"services": {"web": {"image": "x", "ports": ["127.0.0.1:${PORT}:8080"]}}}, "PORT=8123\n")
    project = load_project(str(tmp_path), environ={})
    assert project.unset == []
    assert project.published_ports({}) == ["127.0.0.1:8123"]


# --- ParsedCompose: compose files a plan parsed before ------------------------------------------------------------

COMPOSE = "services:\n  web:\n    image: docker.io/library/nginx:1.27\n    ports: ['8080:80']\n    environment: {B: '2', A: '1'}\n"


def _service(tmp_path, text=COMPOSE):
    folder = tmp_path / "web"
    folder.mkdir(exist_ok=True)
    (folder / "compose.yaml").write_text(text)
    return str(folder)


def _parses(monkeypatch):
    parsed = []
    real = _compose.yaml.load
    monkeypatch.setattr(_compose.yaml, "load", lambda stream, Loader: parsed.append(1) or real(stream, Loader=Loader))  # noqa: N803
    return parsed


def test_a_compose_file_parsed_by_the_last_plan_is_not_parsed_again(tmp_path, monkeypatch):
    service, cache_file = _service(tmp_path), str(tmp_path / "compose-cache.json")
    parsed = _parses(monkeypatch)
    first = ParsedCompose(cache_file)
    fresh = load_project(service, cache=first)
    first.save()
    assert len(parsed) == 1

    second = ParsedCompose(cache_file)
    cached = load_project(service, cache=second)
    assert len(parsed) == 1, "the second plan parsed the same bytes again"
    assert cached.raw == fresh.raw and list(cached.raw["services"]["web"]["environment"]) == ["B", "A"]  # key order kept
    assert cached.service_images() == fresh.service_images() and cached.published() == fresh.published()
    before = os.stat(cache_file).st_mtime_ns
    second.save()
    assert os.stat(cache_file).st_mtime_ns == before, "a plan that parsed nothing new writes nothing"

    cached.raw["services"]["web"]["image"] = "changed"  # a caller changing its document changes no other's
    assert load_project(service, cache=ParsedCompose(cache_file)).raw["services"]["web"]["image"] == "docker.io/library/nginx:1.27"


def test_an_edited_compose_file_is_parsed_and_the_old_entry_dropped(tmp_path, monkeypatch):
    service, cache_file = _service(tmp_path), str(tmp_path / "compose-cache.json")
    cache = ParsedCompose(cache_file)
    load_project(service, cache=cache)
    cache.save()
    _service(tmp_path, COMPOSE.replace("1.27", "1.28"))
    parsed = _parses(monkeypatch)

    cache = ParsedCompose(cache_file)
    assert load_project(service, cache=cache).raw["services"]["web"]["image"].endswith(":1.28")
    cache.save()
    assert len(parsed) == 1
    with open(cache_file, encoding="utf-8") as handle:
        assert len(json.load(handle)) == 1


@pytest.mark.parametrize(
    "extra",
    [
        "    labels: {1: one}\n",  # an integer key: JSON would make it "1"
        "x-when: 2026-12-02\n",  # a date
    ],
)
def test_a_document_json_cannot_keep_exactly_is_parsed_every_time(tmp_path, monkeypatch, extra):
    service, cache_file = _service(tmp_path, COMPOSE + extra), str(tmp_path / "compose-cache.json")
    cache = ParsedCompose(cache_file)
    load_project(service, cache=cache)
    cache.save()
    parsed = _parses(monkeypatch)

    load_project(service, cache=ParsedCompose(cache_file))
    assert len(parsed) == 1


def test_a_broken_compose_file_fails_the_same_with_a_cache(tmp_path):
    service = _service(tmp_path, "services:\n  web:\n    image: [unclosed\n")
    with pytest.raises(PodopsError) as without:
        load_project(service)
    with pytest.raises(PodopsError) as cached:
        load_project(service, cache=ParsedCompose(str(tmp_path / "compose-cache.json")))
    assert str(cached.value) == str(without.value)


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"k": 3}'])
def test_an_unreadable_cache_file_is_ignored(tmp_path, content):
    (tmp_path / "compose-cache.json").write_text(content)
    project = load_project(_service(tmp_path), cache=ParsedCompose(str(tmp_path / "compose-cache.json")))
    assert project.service_images() == {"web": "docker.io/library/nginx:1.27"}
