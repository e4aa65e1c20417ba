# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shim's configuration file (YAML): read, validate, and load the secrets it names.

Every mistake is a ``ConfigError`` whose message names the key or file and says how to fix it; the shim
exits non-zero with it instead of starting half-configured.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
import typing as t
from dataclasses import dataclass, field

import yaml

from .services import SLOTS, marker_path

PROVIDERS = ("github", "gitea", "forgejo", "gitlab")
DEFAULT_COMMAND = ["/opt/podops/bin/podops-pull"]

# key: (type(s), default). Defaults are copied, never shared.
SCHEMA: dict[str, tuple[tuple[type, ...], t.Any]] = {
    "listen": ((str, dict), "127.0.0.1:9300"),
    "state_dir": ((str,), "/var/lib/podops"),
    "db_path": ((str,), ""),
    "repo_dir": ((str,), "/var/lib/podops/repo"),
    "services_dir": ((str,), "services"),
    "branch": ((str,), "main"),
    "secret_file": ((str,), ""),
    "provider_secret_files": ((dict,), {}),
    "status_token_file": ((str,), ""),
    "reconcile_command": ((list,), DEFAULT_COMMAND),
    "redeploy_command": ((list,), DEFAULT_COMMAND),
    "project_prefix": ((str,), ""),
    "collections_path": ((str,), "/opt/podops/collections"),
    "max_body_bytes": ((int,), 1024 * 1024),
    "debounce_seconds": ((int, float), 1.0),
    "debounce_max_seconds": ((int, float), 10.0),
    "run_timeout_seconds": ((int, float), 3600),
    "max_log_bytes": ((int,), 256 * 1024),
    "keep_runs": ((int,), 500),
    "podman_command": ((list,), ["podman"]),
    "environment": ((dict,), {}),
    "ab_name": ((str,), "webhook"),
    "broker_socket": ((str,), ""),
    # the seed's routes (POST /deploy-all-changed, /redeploy-and-update/{service}): off unless asked for
    "seed_routes": ((bool,), False),
    # a connection must deliver its request headers this soon after it opened (or after the previous answer)
    "header_timeout_seconds": ((int, float), 5.0),
    # ... and a webhook its whole body this soon after the headers
    "body_timeout_seconds": ((int, float), 10.0),
    # webhook requests read but not verified yet, at once; more get 503
    "max_unverified_requests": ((int,), 32),
    # the replay guard: delivery ids kept this many days, at most max_deliveries of those that started runs
    # (and a tenth as many of pings and ignored ones, so those cannot push the others out)
    "delivery_keep_days": ((int, float), 30),
    "max_deliveries": ((int,), 50000),
}


class ConfigError(Exception):
    """A configuration problem; the message says what is wrong and how to fix it."""


@dataclass
class Config:
    path: str
    host: str
    port: int
    slot: str | None
    state_dir: str
    db_path: str
    repo_dir: str
    services_dir: str
    branch: str
    reconcile_command: list[str]
    redeploy_command: list[str]
    project_prefix: str
    collections_path: str
    max_body_bytes: int
    debounce_seconds: float
    debounce_max_seconds: float
    run_timeout_seconds: float
    max_log_bytes: int
    keep_runs: int
    podman_command: list[str]
    environment: dict[str, str]
    ab_name: str
    broker_socket: str = ""
    seed_routes: bool = False
    header_timeout_seconds: float = 5.0
    body_timeout_seconds: float = 10.0
    max_unverified_requests: int = 32
    delivery_keep_days: float = 30
    max_deliveries: int = 50000
    warnings: list[str] = field(default_factory=list)  # logged at start
    secrets: dict[str, bytes] = field(repr=False, default_factory=dict)  # provider -> secret
    status_token: bytes | None = field(repr=False, default=None)
    secret_paths: dict[str, str] = field(default_factory=dict)
    status_token_path: str = ""

    @property
    def marker_path(self) -> str:
        return marker_path(self.state_dir, self.ab_name)

    @property
    def services_root(self) -> str:
        return os.path.join(self.repo_dir, self.services_dir)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def redactions(self) -> list[bytes]:
        """Every secret value, for scrubbing logs."""
        values = list(self.secrets.values())
        if self.status_token:
            values.append(self.status_token)
        return [value for value in values if value]


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, SCHEMA, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_listen(value: str, where: str) -> tuple[str, int]:
    """``127.0.0.1:9300`` / ``[::1]:9300`` / ``0.0.0.0:80`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} is not HOST:PORT (for example 127.0.0.1:9300)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def _argv(value: list, key: str) -> list[str]:
    if not value or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{key} must be a non-empty list of strings (an argv list, run without a shell), for example {DEFAULT_COMMAND}")
    return list(value)


def resolve_secret_path(value: str, key: str) -> str:
    """Absolute paths as they are; a bare name is a systemd credential in ``$CREDENTIALS_DIRECTORY``."""
    if os.path.isabs(value):
        return value
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds:
        raise ConfigError(
            f"{key}: {value!r} is a credential name, but CREDENTIALS_DIRECTORY is not set (the shim is not running under systemd "
            "with LoadCredential=); give an absolute path instead"
        )
    return os.path.join(creds, value)


def read_secret_file(path: str, key: str) -> bytes:
    """Read a secret; refuse missing, empty, or group/world-accessible files."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{key}: secret file {path} does not exist; create it (random, mode 0600), e.g. with role podops.gitops.webhook") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read secret file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(f"{key}: secret file {path} is readable by other users (mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}")
    try:
        with open(path, "rb") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read secret file {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: secret file {path} is empty; put a long random secret in it")
    return value


def _check_gitlab_secret(path: str, secrets: dict[str, bytes], provider_files: dict) -> list[str]:
    """GitLab sends its secret in plain text (``X-Gitlab-Token``): whoever sees one delivery has it. If it
    were also the HMAC key of another provider's route, a leaked GitLab token would sign GitHub deliveries.
    A config that names per-provider secrets (the role's default) is refused then; the older one-secret
    config (``secret_file`` only) still loads, with a warning that says how to split it."""
    gitlab = secrets.get("gitlab")
    shared = sorted(other for other, value in secrets.items() if other != "gitlab" and gitlab is not None and value == gitlab)
    if not shared:
        return []
    if provider_files:
        raise ConfigError(
            f"{path}: the gitlab secret is the same as the {', '.join(shared)} secret. GitLab sends its token in plain text, so a leaked "
            "GitLab token would sign deliveries of the other routes: give gitlab a secret of its own in provider_secret_files"
        )
    return [
        f"one secret_file for every provider: a leaked GitLab token (GitLab sends it in plain text) would also sign {', '.join(shared)} "
        "deliveries; give each provider its own secret with provider_secret_files (role podops.gitops.webhook does by default)"
    ]


def _read_yaml(path: str) -> dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping of settings")
    return raw


def _typed_values(path: str, raw: dict[str, t.Any]) -> dict[str, t.Any]:
    """Every setting of SCHEMA, from the file or its default, of its type; an unknown key is refused."""
    unknown = sorted(str(key) for key in raw if key not in SCHEMA)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}{_suggest(unknown[0])}; known settings: {', '.join(SCHEMA)}")
    values: dict[str, t.Any] = {}
    for key, (types, default) in SCHEMA.items():
        value = raw.get(key, default)
        if value is None:
            value = default
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(
                "number" if tp is float else {bool: "boolean (true or false)", str: "string", int: "integer", dict: "mapping", list: "list"}[tp] for tp in types
            )
            raise ConfigError(f"{path}: {key} must be a {names}, not {type(value).__name__} {value!r}")
        values[key] = value.copy() if isinstance(value, (dict, list)) else value
    return values


def _listen_address(path: str, listen: t.Any, slot: str | None) -> str:
    """HOST:PORT to listen on: the setting itself, or this slot's entry of it."""
    if not isinstance(listen, dict):
        return listen
    bad = sorted(str(key) for key in listen if key not in SLOTS)
    if bad:
        raise ConfigError(f"{path}: listen has unknown slot {bad[0]!r}; use a and b")
    if slot is None:
        raise ConfigError(f"{path}: listen names one address per slot; start the shim with --slot a or --slot b")
    if slot not in listen:
        raise ConfigError(f"{path}: listen has no address for slot {slot!r}")
    if not isinstance(listen[slot], str):
        raise ConfigError(f"{path}: listen.{slot} must be a HOST:PORT string")
    return listen[slot]


POSITIVE = (
    "max_body_bytes",
    "max_log_bytes",
    "keep_runs",
    "run_timeout_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "max_unverified_requests",
    "delivery_keep_days",
    "max_deliveries",
)


def _check_values(path: str, values: dict[str, t.Any]) -> None:
    for key in ("state_dir", "repo_dir", "collections_path", "broker_socket"):
        if values[key] and not os.path.isabs(values[key]):
            raise ConfigError(f"{path}: {key} must be an absolute path, not {values[key]!r}")
    if os.path.isabs(values["services_dir"]) or ".." in values["services_dir"].split("/"):
        raise ConfigError(f"{path}: services_dir is a folder inside repo_dir (like 'services'), not {values['services_dir']!r}")
    for key in POSITIVE:
        if values[key] <= 0:
            raise ConfigError(f"{path}: {key} must be greater than 0")
    if values["debounce_seconds"] < 0 or values["debounce_max_seconds"] < values["debounce_seconds"]:
        raise ConfigError(f"{path}: debounce_seconds must be 0 or more, and debounce_max_seconds at least as large")
    environment = values["environment"]
    if not all(isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in environment.items()):
        raise ConfigError(f"{path}: environment must map variable names to strings")
    bad = sorted(str(key) for key in values["provider_secret_files"] if key not in PROVIDERS)
    if bad:
        raise ConfigError(f"{path}: provider_secret_files has unknown provider {bad[0]!r}; known: {', '.join(PROVIDERS)}")


def _read_secrets(path: str, values: dict[str, t.Any]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Each provider's webhook secret (its own file, else secret_file), each file read once."""
    provider_files = values["provider_secret_files"]
    secret_paths: dict[str, str] = {}
    secrets: dict[str, bytes] = {}
    read: dict[str, bytes] = {}
    for provider in PROVIDERS:
        chosen = provider_files.get(provider) or values["secret_file"]
        key = f"provider_secret_files.{provider}" if provider_files.get(provider) else "secret_file"
        if not isinstance(chosen, str):
            raise ConfigError(f"{path}: {key} must be a path")
        if chosen:
            secret_paths[provider] = resolve_secret_path(chosen, key)
            if secret_paths[provider] not in read:
                read[secret_paths[provider]] = read_secret_file(secret_paths[provider], key)
            secrets[provider] = read[secret_paths[provider]]
    if not secret_paths:
        raise ConfigError(f"{path}: secret_file is not set: the shim never accepts unsigned webhooks; point it at a file holding the webhook secret")
    return secrets, secret_paths


def load(path: str, slot: str | None = None, broker: bool = False) -> Config:
    """Read and validate the config file, and load the secrets it names. ``broker``: for the run broker,
    which listens nowhere and needs no secret (it reads none)."""
    if slot is not None and slot not in SLOTS:
        raise ConfigError(f"--slot must be one of {', '.join(SLOTS)}, not {slot!r}")
    values = _typed_values(path, _read_yaml(path))
    host, port = parse_listen("127.0.0.1:1" if broker else _listen_address(path, values["listen"], slot), f"{path}: listen")
    _check_values(path, values)
    environment = values["environment"]
    secrets, secret_paths = ({}, {}) if broker else _read_secrets(path, values)
    warnings = _check_gitlab_secret(path, secrets, values["provider_secret_files"])
    token = None
    token_path = ""
    if values["status_token_file"] and not broker:
        token_path = resolve_secret_path(values["status_token_file"], "status_token_file")
        token = read_secret_file(token_path, "status_token_file")

    return Config(
        path=path,
        host=host,
        port=port,
        slot=slot,
        state_dir=values["state_dir"],
        db_path=values["db_path"] or os.path.join(values["state_dir"], "webhook", "webhook.sqlite3"),
        repo_dir=values["repo_dir"],
        services_dir=values["services_dir"].strip("/") or "services",
        branch=values["branch"],
        reconcile_command=_argv(values["reconcile_command"], "reconcile_command"),
        redeploy_command=_argv(values["redeploy_command"], "redeploy_command"),
        project_prefix=values["project_prefix"],
        collections_path=values["collections_path"],
        max_body_bytes=values["max_body_bytes"],
        debounce_seconds=float(values["debounce_seconds"]),
        debounce_max_seconds=float(values["debounce_max_seconds"]),
        run_timeout_seconds=float(values["run_timeout_seconds"]),
        max_log_bytes=values["max_log_bytes"],
        keep_runs=values["keep_runs"],
        podman_command=_argv(values["podman_command"], "podman_command"),
        environment={k: str(v) for k, v in environment.items()},
        ab_name=values["ab_name"],
        broker_socket=values["broker_socket"],
        seed_routes=values["seed_routes"],
        header_timeout_seconds=float(values["header_timeout_seconds"]),
        body_timeout_seconds=float(values["body_timeout_seconds"]),
        max_unverified_requests=values["max_unverified_requests"],
        delivery_keep_days=float(values["delivery_keep_days"]),
        max_deliveries=values["max_deliveries"],
        warnings=warnings,
        secrets=secrets,
        status_token=token,
        secret_paths=secret_paths,
        status_token_path=token_path,
    )
