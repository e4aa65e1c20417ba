# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The compose model: find a service's compose file, read it, and answer what podops needs from it.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

podops does not re-implement compose: podman-compose runs the project. This module reads only what the
plan and the health gate need - the files a project reads (``.env``, ``env_file``), the images, the
compose services, the published ports, and the ``x-podops`` settings - and reports YAML errors with
file and line.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import re
import typing as t
from dataclasses import dataclass, field

from ._common import COMPOSE_FILE_NAMES, TIMEOUT_DEFAULTS, PodopsError
from ._depends import merge_depends_on
from ._state import write_json
from ._switch import DEFAULT_UPSTREAM_TEMPLATE, SwitchConfig

try:
    import yaml

    try:
        from yaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover - pure-python PyYAML
        from yaml import SafeLoader as _Loader  # type: ignore[assignment]
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the modules with missing_required_lib
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc

STRATEGIES = ("recreate", "blue-green")
SLOT_KEYS = ("ports", "health_url", "upstream_file", "upstream_template", "reload_command", "drain", "stop_timeout")
HEALTH_DEFAULTS = {"timeout": 60.0, "samples": 2, "interval": 0.5}
DEFAULT_ORDER = 50
XPODOPS_KEYS = ("strategy", "health", "ignore", "order", "oneshot", "slots", "image_updates", "timeouts", "profiles", "url_scheme")
URL_SCHEMES = ("http", "https")
# The time limits a service may set (the others - host-wide podman calls, git - are the same for all services).
SERVICE_TIMEOUTS = ("pull", "up", "down", "healthcheck", "reload")


@dataclass
class EnvFileRef:
    """One file the project reads environment from: ``.env`` or an ``env_file`` entry."""

    ref: str  # as written, relative to the service dir (``../../secrets/app.env``) or absolute
    path: str  # absolute, normalised
    required: bool


@dataclass
class Settings:
    """The ``x-podops`` extension field, validated, with defaults."""

    strategy: str = "recreate"
    health_timeout: float = HEALTH_DEFAULTS["timeout"]
    health_samples: int = int(HEALTH_DEFAULTS["samples"])
    health_interval: float = HEALTH_DEFAULTS["interval"]
    ignore: list[str] = field(default_factory=list)
    order: int = DEFAULT_ORDER
    oneshot: list[str] = field(default_factory=list)
    image_updates: bool | None = None  # None: follow podops_image_updates
    slots: dict[str, t.Any] = field(default_factory=dict)  # blue-green: x-podops.slots, validated
    timeouts: dict[str, float] = field(default_factory=lambda: dict(TIMEOUT_DEFAULTS))  # x-podops.timeouts over the defaults
    profiles: list[str] = field(default_factory=list)  # x-podops.profiles: active besides COMPOSE_PROFILES
    url_scheme: str | None = None  # x-podops.url_scheme: the summary prints its TCP ports as http(s) URLs

    @property
    def blue_green(self) -> bool:
        return self.strategy == "blue-green"

    def switch_config(self, name: str) -> SwitchConfig:
        """The A/B switch of a blue-green service; its health gate follows x-podops.health."""
        slots = self.slots
        return SwitchConfig(
            name=name,
            ports=dict(slots.get("ports") or {}),
            health_url=slots.get("health_url"),
            health_timeout=self.health_timeout,
            health_samples=self.health_samples,
            health_interval=self.health_interval,
            upstream_file=slots.get("upstream_file"),
            upstream_template=slots.get("upstream_template") or DEFAULT_UPSTREAM_TEMPLATE,
            reload_command=list(slots.get("reload_command") or []),
            drain=float(slots.get("drain", 2.0)),
            reload_timeout=self.timeouts["reload"],
        )

    def slot_env(self, slot: str) -> dict[str, str]:
        """What a slot's compose file can interpolate: ${PODOPS_SLOT} and ${PODOPS_SLOT_PORT}."""
        env = {"PODOPS_SLOT": slot}
        port = (self.slots.get("ports") or {}).get(slot)
        if port:
            env["PODOPS_SLOT_PORT"] = str(port)
        return env


@dataclass
class ComposeProject:
    service_dir: str
    compose_file: str
    name: str | None  # top-level ``name:``
    services: dict[str, dict]  # the active services: no ``profiles:``, or one of the active profiles
    settings: Settings
    dotenv: dict[str, str]
    env_files: list[EnvFileRef]
    profiles: list[str] = field(default_factory=list)  # the active profiles (COMPOSE_PROFILES and x-podops.profiles)
    inactive: dict[str, dict] = field(default_factory=dict)  # services of profiles that are not active: podops leaves them out
    override_file: str | None = None  # compose.override.yaml and friends, passed on with -f
    pod_setting: bool = False  # the file chooses pod use itself (x-podman.in_pod)
    raw: dict = field(default_factory=dict)  # the whole file, for the top-level sections
    slot_env: dict[str, str] = field(default_factory=dict)  # a blue-green slot's PODOPS_SLOT, PODOPS_SLOT_PORT
    unset: list[str] = field(default_factory=list)  # variables the file uses plainly ($X, ${X}) that have no value

    def service_images(self, environ: t.Mapping[str, str] | None = None) -> dict[str, str]:
        """``{compose service: image}`` for services that are not built locally, interpolated."""
        variables = self.variables(environ)
        return {name: interpolate(str(svc["image"]), variables) for name, svc in self.services.items() if svc.get("image") and not svc.get("build")}

    def container_names(self, project_name: str, environ: t.Mapping[str, str] | None = None) -> dict[str, str]:
        """``{compose service: container name}`` as podman-compose names them (``container_name`` or
        ``<project>_<service>_1``), for the services ``up`` starts."""
        variables = self.variables(environ)
        names = {}
        for name in self.started_services():
            fixed = self.services[name].get("container_name")
            names[name] = interpolate(str(fixed), variables) if fixed else f"{project_name}_{name}_1"
        return names

    def images(self, environ: t.Mapping[str, str] | None = None) -> list[str]:
        """Images of services that are not built locally, interpolated, in file order."""
        found = []
        for svc in self.services.values():
            image = svc.get("image")
            if not image or svc.get("build"):
                continue
            image = interpolate(str(image), self.variables(environ))
            if image not in found:
                found.append(image)
        return found

    def variables(self, environ: t.Mapping[str, str] | None = None) -> t.Mapping[str, str]:
        """What the file interpolates: a slot's variables over the environment over ``.env``. A view, not a copy:
        copying the environment for each project and each lookup was a tenth of a 100-service no-op."""
        return collections.ChainMap(self.slot_env, environ if environ is not None else os.environ, self.dotenv)

    def jobs(self) -> list[str]:
        """Compose services that may exit with code 0: those another service waits for with ``depends_on:
        {x: {condition: service_completed_successfully}}`` (a migration, an init step) and x-podops.oneshot."""
        found = list(self.settings.oneshot)
        for svc in self.services.values():
            depends = svc.get("depends_on")
            for name, spec in depends.items() if isinstance(depends, dict) else []:
                if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully" and name not in found:
                    found.append(name)
        return found

    def started_services(self) -> list[str]:
        """Compose services ``up`` starts: the active ones (without ``profiles``, or of an active profile)."""
        return list(self.services)

    @property
    def builds(self) -> bool:
        """True when a service is built from a context (``up --build`` then rebuilds it)."""
        return any(svc.get("build") for svc in self.services.values())

    def referenced_paths(self, environ: t.Mapping[str, str] | None = None) -> list[tuple[str, str, bool, str]]:
        """Other files the project reads, as ``(reference as written, absolute path, is a folder, kind)``:
        kind ``config`` for top-level ``secrets``/``configs`` files, ``extends.file`` and ``include``; kind
        ``bind`` for relative bind-mount sources outside the service folder (``../shared/conf``). Inside the
        folder, git-tracked files are digested anyway; absolute host paths (``/srv/data``) are never digested."""
        variables = self.variables(environ)
        found: dict[str, tuple[str, str, bool, str]] = {}

        def add(ref: t.Any, relative_only: bool = False, interpolated: bool = False) -> None:
            if not isinstance(ref, str) or not ref:
                return
            if not interpolated:
                ref = interpolate(ref, variables)
            if relative_only and not ref.startswith("."):
                return  # a named volume or an absolute host path
            path = os.path.normpath(os.path.join(self.service_dir, os.path.expanduser(ref)))
            inside = os.path.relpath(path, self.service_dir).split(os.sep)[0] != ".."
            if relative_only and inside:
                return
            found.setdefault(path, (ref, path, os.path.isdir(path), "bind" if relative_only else "config"))

        for ref in self._config_refs():
            add(ref)
        for svc in self.services.values():
            extends = svc.get("extends")
            if isinstance(extends, dict):
                add(extends.get("file"))
            for source, interpolated in _bind_sources(svc, variables):
                add(source, relative_only=True, interpolated=interpolated)
        return list(found.values())

    def _config_refs(self) -> t.Iterator[t.Any]:
        """Files named by top-level ``secrets``/``configs`` (of active services) and ``include``."""
        for section in ("secrets", "configs"):
            unused_by_active = _used_by(self.inactive, section) - _used_by(self.services, section)
            for key, entry in (self.raw.get(section) or {}).items():
                if isinstance(entry, dict) and key not in unused_by_active:
                    yield entry.get("file")
        includes = self.raw.get("include") or []
        for entry in includes if isinstance(includes, list) else []:
            paths = entry.get("path") if isinstance(entry, dict) else entry
            yield from paths if isinstance(paths, list) else [paths]

    def writable_binds(self) -> list[str]:
        """Relative bind-mount sources inside the service folder mounted read-write (``./data:/data``), as
        paths relative to the folder: data the service writes. Only used for env repos that are not git
        checkouts, where podops cannot ask git which files are part of the repo."""
        found = []
        for svc in self.services.values():
            for volume in svc.get("volumes") or []:
                if isinstance(volume, dict):
                    source, read_only = volume.get("source"), bool(volume.get("read_only"))
                    if volume.get("type") != "bind":
                        continue
                elif isinstance(volume, str):
                    parts = interpolate(volume, self.variables()).split(":")
                    source, read_only = parts[0], len(parts) > 2 and "ro" in parts[2].split(",")
                else:
                    continue
                if not isinstance(source, str) or not source.startswith(".") or read_only:
                    continue
                rel = os.path.relpath(os.path.normpath(os.path.join(self.service_dir, source)), self.service_dir)
                if rel != "." and rel.split(os.sep)[0] != "..":
                    found.append(rel)
        return found

    def published_ports(self, environ: t.Mapping[str, str] | None = None) -> list[str]:
        """Host ports as ``[ip:]port`` strings."""
        found: list[str] = []
        for host, _protocol in self.published(environ):
            if host not in found:
                found.append(host)
        return found

    def published(self, environ: t.Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """Host ports as ``([ip:]port, protocol)``, protocol ``tcp`` or ``udp``, for the summary."""
        variables = self.variables(environ)
        found: list[tuple[str, str]] = []
        for svc in self.services.values():
            for port in svc.get("ports") or []:
                host = _host_port(port, variables)
                entry = (host, _protocol(port, variables))
                if host and entry not in found:
                    found.append(entry)  # type: ignore[arg-type]
        return found


def find_compose_file(service_dir: str) -> str | None:
    for name in COMPOSE_FILE_NAMES:
        candidate = os.path.join(service_dir, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def find_override_file(compose_file: str) -> str | None:
    """The standard override next to the compose file (``compose.override.yaml`` for ``compose.yaml``,
    ``docker-compose.override.yml`` for ``docker-compose.yml``, ...). podman-compose reads it only when no
    ``-f`` is given; podops gives ``-f``, so it passes the override on itself."""
    stem, ext = os.path.splitext(compose_file)
    for candidate in (f"{stem}.override{ext}", f"{stem}.override.yaml", f"{stem}.override.yml"):
        if os.path.isfile(candidate):
            return candidate
    return None


def _included_services(service_dir: str, data: dict, compose_name: str, variables: t.Mapping[str, str]) -> dict[str, dict]:
    """Services of the files named by ``include:`` (they are part of the project podman-compose runs)."""
    found: dict[str, dict] = {}
    includes = data.get("include") or []
    for entry in includes if isinstance(includes, list) else []:
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for ref in paths if isinstance(paths, list) else [paths]:
            if not isinstance(ref, str):
                continue
            path = os.path.normpath(os.path.join(service_dir, interpolate(ref, variables)))
            if not os.path.exists(path):
                continue  # the plan names it with every other missing file (referenced_paths lists it)
            included = load_yaml_file(path)
            services = included.get("services") if isinstance(included, dict) else None
            if not isinstance(services, dict):
                raise PodopsError(f"{compose_name}: the included file {ref} has no 'services:' mapping")
            found.update({name: svc for name, svc in services.items() if isinstance(svc, dict)})
    return found


def yaml_error_message(path: str, exc: Exception) -> str:
    """``compose.yaml line 4, column 7: mapping values are not allowed here``."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"invalid YAML in {path} line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML in {path}: {problem}"


def load_yaml_file(path: str, cache: ParsedCompose | None = None) -> t.Any:
    """The YAML document of ``path``; with ``cache``, a file of the same bytes as one parsed before is not parsed."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise PodopsError(f"cannot read {path}: {exc.strerror}") from exc
    known = cache.get(raw) if cache is not None else None
    if known is not None:
        return known
    try:
        data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - SafeLoader/CSafeLoader
    except yaml.YAMLError as exc:
        raise PodopsError(yaml_error_message(os.path.basename(path), exc)) from exc
    if cache is not None:
        cache.put(raw, data)
    return data


COMPOSE_CACHE_FILE = "compose-cache.json"  # <state_dir>/compose-cache.json: see ParsedCompose


class ParsedCompose:
    """What PyYAML made of the compose files of the last plan, as JSON text by the sha256 of each file's bytes.

    A no-op plan reads every service's compose file; building the YAML document was most of that, and
    ``json.loads`` of the same document is a small part of it. Only documents JSON keeps exactly (string keys;
    strings, numbers, booleans, null, lists, mappings) are kept: a document with dates, binary or integer keys
    is parsed each time. Every ``get`` returns a new document (load_project's callers may change it). ``save``
    keeps the entries this plan used, so edited files drop out."""

    def __init__(self, path: str):
        self.path = path
        self.used: dict[str, str] = {}
        self.added = False
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except (OSError, ValueError):
            loaded = {}
        self.known = {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}

    def get(self, raw: bytes) -> t.Any:
        key = hashlib.sha256(raw).hexdigest()
        text = self.known.get(key)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        self.used[key] = text
        return data

    def put(self, raw: bytes, data: t.Any) -> None:
        if not isinstance(data, dict):
            return  # nothing worth keeping (load_project refuses it anyway), and None means "not kept"
        try:
            text = json.dumps(data, separators=(",", ":"), allow_nan=False)  # key order kept: it is the file's
        except (TypeError, ValueError):
            return
        if json.loads(text) == data:
            self.used[hashlib.sha256(raw).hexdigest()] = text
            self.added = True

    def save(self, owner: tuple[int, int] | None = None) -> None:
        """Write what this plan used, when it differs from what was read (no write on a no-op)."""
        if self.added or set(self.used) != set(self.known):
            with contextlib.suppress(OSError):
                write_json(self.path, self.used, owner=owner)


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")


# What python-dotenv (podman-compose reads .env with it) expands in a value: ${NAME} and ${NAME:-default}.
_DOTENV_VAR = re.compile(r"\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}")


def parse_dotenv(text: str, environ: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """The subset of dotenv syntax compose files use: KEY=VALUE, quotes, comments, ``export``. With
    ``environ``, ``${NAME}`` and ``${NAME:-default}`` in values are expanded as podman-compose's python-dotenv
    (1.x) does, quoted values included: from the lines above first, then from ``environ``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        quote = value[:1] if value[:1] in ("'", '"') and value.find(value[0], 1) > 0 else ""
        if quote:
            value = value[1 : value.find(value[0], 1)]  # quoted: up to the closing quote, comment after it
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if environ is not None:
            known = {**environ, **values}
            # python-dotenv's rule, not compose's: a variable that is set but empty stays empty even with ':-'.
            value = _DOTENV_VAR.sub(lambda var, known=known: known.get(var.group("name"), var.group("default") or "") or "", value)
        values[key] = value
    return values


_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
# Longest first: ``${A:-x}`` is ``:-``, not a name followed by ``:``.
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolate(text: str, variables: t.Mapping[str, str]) -> str:
    """Compose-spec interpolation, as podman-compose 1.6 does it: ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}``, nested
    (``${TAG:-$VERSION}``, ``${A:-${B:-x}}``), ``$$`` for a literal ``$``; a ``$`` that starts no variable
    (``$5``) stays as it is. A required variable without a value, an unknown operator (``${A/x/y}``) or an
    unclosed brace raise PodopsError, as compose refuses such a file."""
    out: list[str] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        following = text[i + 1] if i + 1 < end else ""
        if char != "$" or not following:
            out.append(char)
            i += 1
        elif following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            close = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2 : close], variables))
            i = close + 1
        elif following in _NAME_START:
            j = i + 1
            while j < end and text[j] in _NAME_CHARS:
                j += 1
            out.append(variables.get(text[i + 1 : j]) or "")
            i = j
        else:
            out.append(char)
            i += 1
    return "".join(out)


# A plain use of a variable, ``$NAME`` or ``${NAME}`` (no default, no operator), once ``$$`` escapes are gone.
_PLAIN_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
# Filled in by podops itself when a blue-green slot starts.
_PODOPS_VARIABLES = ("PODOPS_SLOT", "PODOPS_SLOT_PORT")


def unset_variables(node: t.Any, variables: t.Mapping[str, str]) -> list[str]:
    """Variables that ``node`` (a compose document) uses without a default and that have no value at all:
    compose (and podman-compose) puts an empty string there, as ``docker compose`` warns."""
    found: list[str] = []

    def walk(value: t.Any) -> None:
        if isinstance(value, str):
            for match in _PLAIN_VAR.finditer(value.replace("$$", "")):
                name = match.group(1) or match.group(2)
                if name not in variables and name not in _PODOPS_VARIABLES and name not in found:
                    found.append(name)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return found


def check_unset_values(compose_name: str, services: t.Mapping[str, t.Any], variables: t.Mapping[str, str], unset: t.Sequence[str]) -> None:
    """Fail where an unset variable's empty value leaves the file meaning something else: an image without
    its tag, a published port without its host port (podman would pick a random one)."""
    if not unset:
        return

    def missing(text: str) -> list[str]:
        return [name for name in unset if re.search(rf"\$\{{?{name}\b", text)]

    def refuse(where: str, raw: str, names: list[str]) -> t.NoReturn:
        raise PodopsError(
            f"{compose_name}: {where} {raw!r} is invalid once interpolated: {', '.join(names)} "
            f"{'is' if len(names) == 1 else 'are'} not set. Set {'it' if len(names) == 1 else 'them'} in the service's .env (or give a default: "
            f"${{{names[0]}:-value}})"
        )

    for name, svc in services.items():
        image = svc.get("image") if isinstance(svc, dict) else None
        if isinstance(image, str) and missing(image):
            value = interpolate(image, variables)
            if not value or value.endswith((":", "@", "/")):
                refuse(f"services.{name}.image", image, missing(image))
        for port in (svc.get("ports") or []) if isinstance(svc, dict) else []:
            raw = str(port.get("published", "")) if isinstance(port, dict) else str(port)
            names = missing(raw)
            if not names:
                continue
            host = _host_port(port, variables) if not isinstance(port, dict) else interpolate(raw, variables)
            if isinstance(port, dict):
                empty = not host
            else:
                spec = interpolate(raw, variables).split("/", 1)[0]
                empty = spec.startswith(":") or (host is not None and host.endswith(":")) or "::" in spec
            if empty:
                refuse(f"services.{name}.ports", raw, names)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise PodopsError(f"no closing brace in {text!r}: write $$ for a literal $")


def _braced(content: str, variables: t.Mapping[str, str]) -> str:
    """The value of one ``${...}`` (its content without the braces); operands are interpolated only when used."""
    if not content or content[0] not in _NAME_START:
        raise PodopsError(f"invalid interpolation format ${{{content}}}: write $$ for a literal $")
    length = 1
    while length < len(content) and content[length] in _NAME_CHARS:
        length += 1
    name, rest = content[:length], content[length:]
    value = variables.get(name)
    if not rest:
        return value or ""
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise PodopsError(f"invalid interpolation ${{{content}}}: compose knows only :-, -, :?, ?, :+ and +")
    operand = rest[len(operator) :]
    present = value is not None and (value != "" or ":" not in operator)  # ':' also counts an empty value as unset
    if operator.endswith("-"):
        return t.cast(str, value) if present else interpolate(operand, variables)
    if operator.endswith("?"):
        if not present:
            raise PodopsError(f"required variable {name} is missing a value: {interpolate(operand, variables)}")
        return t.cast(str, value)
    return interpolate(operand, variables) if present else ""


def _protocol(port: t.Any, variables: t.Mapping[str, str]) -> str:
    if isinstance(port, dict):
        return str(port.get("protocol") or "tcp").lower()
    _spec, _sep, protocol = interpolate(str(port), variables).partition("/")
    return protocol.lower() or "tcp"


def _host_port(port: t.Any, variables: t.Mapping[str, str]) -> str | None:
    if isinstance(port, dict):
        published = port.get("published")
        if published in (None, ""):
            return None
        ip = port.get("host_ip")
        published = interpolate(str(published), variables)
        return f"{ip}:{published}" if ip else published
    spec = interpolate(str(port), variables).split("/", 1)[0]
    parts = spec.rsplit(":", 2)
    if len(parts) == 1:
        return None  # container port only: a random host port
    if len(parts) == 2:
        return parts[0]
    return f"{parts[0]}:{parts[1]}"


def _bind_sources(svc: t.Mapping[str, t.Any], variables: t.Mapping[str, str]) -> t.Iterator[tuple[t.Any, bool]]:
    """The host side of a service's bind mounts, as written (long form) or interpolated (short form)."""
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume.get("source"), False
        elif isinstance(volume, str):
            # ${DIR:-../x}:/y holds a ':' of its own: fill the variables in before splitting
            yield interpolate(volume, variables).split(":", 1)[0], True


def _settings(raw: t.Any, compose_name: str, services: t.Mapping[str, t.Any]) -> Settings:
    if raw is None:
        return Settings()
    where = f"{compose_name}: x-podops"
    if not isinstance(raw, dict):
        raise PodopsError(f"{where} must be a mapping, for example 'x-podops: {{order: 10}}'")
    unknown = sorted(set(raw) - set(XPODOPS_KEYS))
    if unknown:
        raise PodopsError(f"{where} has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(XPODOPS_KEYS)}")
    settings = Settings()
    strategy = raw.get("strategy", "recreate")
    if strategy not in STRATEGIES:
        raise PodopsError(f"{where}.strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    settings.strategy = strategy
    settings.health_timeout, settings.health_samples, settings.health_interval = _health(raw.get("health") or {}, where)
    settings.ignore = _strings(raw.get("ignore"), f"{where}.ignore must be a list of glob patterns such as ['*.md', 'docs/**']", allow_empty=True)
    order = raw.get("order", DEFAULT_ORDER)
    if not isinstance(order, int) or isinstance(order, bool):
        raise PodopsError(f"{where}.order must be an integer (lower deploys first), not {order!r}")
    settings.order = order
    oneshot = raw.get("oneshot") or []
    if not isinstance(oneshot, list) or not all(isinstance(name, str) and name in services for name in oneshot):
        raise PodopsError(f"{where}.oneshot must list compose services of this file that may exit with code 0")
    settings.oneshot = oneshot
    image_updates = raw.get("image_updates")
    if image_updates is not None and not isinstance(image_updates, bool):
        raise PodopsError(f"{where}.image_updates must be true or false, not {image_updates!r}")
    settings.image_updates = image_updates
    settings.timeouts = _timeouts(raw.get("timeouts"), where)
    settings.profiles = _strings(raw.get("profiles"), f"{where}.profiles must be a list of compose profile names such as [monitoring, debug]")
    scheme = raw.get("url_scheme")
    if scheme is not None and scheme not in URL_SCHEMES:
        raise PodopsError(f"{where}.url_scheme must be one of {', '.join(URL_SCHEMES)} (the summary then prints URLs), not {scheme!r}")
    settings.url_scheme = scheme
    settings.slots = _slots(raw.get("slots"), settings, where, services)
    return settings


def _health(health: t.Any, where: str) -> tuple[float, int, float]:
    """x-podops.health: (timeout, samples, interval)."""
    if not isinstance(health, dict):
        raise PodopsError(f"{where}.health must be a mapping with timeout, samples and interval")
    unknown = sorted(set(health) - set(HEALTH_DEFAULTS))
    if unknown:
        raise PodopsError(f"{where}.health has unknown key(s) {', '.join(unknown)}; known keys: timeout, samples, interval")
    try:
        timeout = float(health.get("timeout", HEALTH_DEFAULTS["timeout"]))
        samples = int(health.get("samples", HEALTH_DEFAULTS["samples"]))
        interval = float(health.get("interval", HEALTH_DEFAULTS["interval"]))
    except (TypeError, ValueError) as exc:
        raise PodopsError(f"{where}.health values must be numbers (seconds, count): {exc}") from exc
    if timeout <= 0 or samples < 1 or interval < 0:
        raise PodopsError(f"{where}.health needs timeout > 0, samples >= 1 and interval >= 0")
    return timeout, samples, interval


def _strings(raw: t.Any, error: str, allow_empty: bool = False) -> list[str]:
    """A list of strings (one string alone counts as a list of it); ``error`` when it is anything else."""
    items = raw or []
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(item, str) and (item or allow_empty) for item in items):
        raise PodopsError(error)
    return items


def _timeouts(raw: t.Any, where: str) -> dict[str, float]:
    """x-podops.timeouts: seconds per kind of command, over TIMEOUT_DEFAULTS."""
    timeouts = dict(TIMEOUT_DEFAULTS)
    if raw is None:
        return timeouts
    known = ", ".join(SERVICE_TIMEOUTS)
    if not isinstance(raw, dict):
        raise PodopsError(f"{where}.timeouts must be a mapping of seconds, for example {{pull: 1200, up: 600}}; known keys: {known}")
    unknown = sorted(str(key) for key in set(raw) - set(SERVICE_TIMEOUTS))
    if unknown:
        raise PodopsError(f"{where}.timeouts has unknown key(s) {', '.join(unknown)}; known keys: {known}")
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise PodopsError(f"{where}.timeouts.{key} must be a number of seconds > 0, not {value!r}")
        timeouts[key] = float(value)
    return timeouts


def _slots(raw: t.Any, settings: Settings, where: str, services: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """x-podops.slots of a blue-green service: ports per slot, health URL, reverse-proxy upstream."""
    if raw is not None and not settings.blue_green:
        raise PodopsError(f"{where}.slots only applies to strategy blue-green; add 'strategy: blue-green' or remove slots")
    if not settings.blue_green:
        return {}
    raw = raw or {}
    if not isinstance(raw, dict):
        raise PodopsError(f"{where}.slots must be a mapping, for example {{ports: {{a: 8081, b: 8082}}}}")
    unknown = sorted(set(raw) - set(SLOT_KEYS))
    if unknown:
        raise PodopsError(f"{where}.slots has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(SLOT_KEYS)}")
    named = sorted(name for name, svc in services.items() if isinstance(svc, dict) and svc.get("container_name"))
    if named:
        raise PodopsError(
            f"{where}: strategy blue-green runs two copies side by side, so container_name cannot be used "
            f"(services {', '.join(named)}); remove it and let podman-compose name the containers"
        )
    slots = dict(raw)
    ports = slots.get("ports")
    if ports is not None:
        if not isinstance(ports, dict):
            raise PodopsError(f"{where}.slots.ports must map each slot to its port, for example {{a: 8081, b: 8082}}")
        slots["ports"] = {str(slot): port for slot, port in ports.items()}
    for key in ("drain", "stop_timeout"):
        value = slots.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise PodopsError(f"{where}.slots.{key} must be a number of seconds >= 0, not {value!r}")
    reload_command = slots.get("reload_command")
    if isinstance(reload_command, str):
        raise PodopsError(f"{where}.slots.reload_command must be a list of arguments (it runs without a shell), for example [nginx, -s, reload]")
    Settings(strategy="blue-green", slots=slots).switch_config("check").validate(f"{where}.slots")
    return slots


def _env_file_refs(service_dir: str, compose_name: str, services: dict, variables: t.Mapping[str, str]) -> list[EnvFileRef]:
    refs: dict[str, EnvFileRef] = {}
    dotenv = os.path.join(service_dir, ".env")
    refs[dotenv] = EnvFileRef(".env", dotenv, False)
    for svc_name, svc in services.items():
        entries = svc.get("env_file")
        if entries is None:
            continue
        if isinstance(entries, (str, dict)):
            entries = [entries]
        if not isinstance(entries, list):
            raise PodopsError(f"{compose_name}: services.{svc_name}.env_file must be a path or a list of paths")
        for entry in entries:
            required = True
            if isinstance(entry, dict):
                if "path" not in entry:
                    raise PodopsError(f"{compose_name}: services.{svc_name}.env_file entry {entry!r} has no 'path'")
                required = bool(entry.get("required", True))
                entry = entry["path"]
            ref = interpolate(str(entry), variables)
            path = os.path.normpath(os.path.join(service_dir, os.path.expanduser(ref)))
            previous = refs.get(path)
            refs[path] = EnvFileRef(ref, path, required or bool(previous and previous.required))
    return list(refs.values())


def active_profiles(variables: t.Mapping[str, str], chosen: t.Iterable[str] = ()) -> list[str]:
    """The active compose profiles, as podman-compose 1.6 takes them: COMPOSE_PROFILES (comma-separated; the
    environment over the service's .env) together with those podops passes as --profile (x-podops.profiles)."""
    found: list[str] = []
    for name in [*(variables.get("COMPOSE_PROFILES") or "").split(","), *chosen]:
        name = name.strip()
        if name and name not in found:
            found.append(name)
    return found


def is_active(svc: t.Mapping[str, t.Any], profiles: t.Sequence[str], compose_name: str = "compose file", name: str = "?") -> bool:
    """A service without ``profiles:`` is always active; one with profiles when one of them is active."""
    own = svc.get("profiles")
    if not own:
        return True
    if isinstance(own, str) or not isinstance(own, list):
        raise PodopsError(f"{compose_name}: services.{name}.profiles must be a list of profile names, for example [debug]")
    return bool(set(map(str, own)) & set(profiles))


def _used_by(services: t.Mapping[str, t.Any], section: str) -> set[str]:
    """Names of the top-level ``secrets``/``configs`` entries these services use."""
    used: set[str] = set()
    for svc in services.values():
        for item in (svc.get(section) or []) if isinstance(svc, dict) else []:
            source = item.get("source") if isinstance(item, dict) else item
            if isinstance(source, str):
                used.add(source)
    return used


def _read_dotenv(service_dir: str, environ: t.Mapping[str, str] | None) -> dict[str, str]:
    """The service folder's ``.env`` (empty without one), interpolated against ``environ``."""
    dotenv_path = os.path.join(service_dir, ".env")
    if not os.path.isfile(dotenv_path):
        return {}
    try:
        with open(dotenv_path, encoding="utf-8-sig", errors="replace") as handle:
            return parse_dotenv(handle.read(), environ if environ is not None else os.environ)
    except OSError as exc:
        raise PodopsError(f"cannot read {dotenv_path}: {exc.strerror}") from exc


def _file_services(data: t.Mapping[str, t.Any], compose_name: str) -> dict[str, t.Any]:
    """The compose file's own ``services:``, each checked to be a service podman-compose can start."""
    services = data.get("services")
    if services is None and data.get("include"):
        services = {}
    if not isinstance(services, dict):
        raise PodopsError(f"{compose_name} has no services: add a 'services:' mapping with at least one service")
    for name, svc in services.items():
        if not isinstance(svc, dict):
            raise PodopsError(f"{compose_name}: services.{name} must be a mapping")
        if not svc.get("image") and not svc.get("build") and not svc.get("extends"):
            raise PodopsError(f"{compose_name}: services.{name} needs an 'image:' (or a 'build:' or 'extends:')")
    return dict(services)


def _merge_override(services: dict[str, t.Any], extra: t.Any) -> None:
    """The user's ``compose.override.yaml`` over the file's services, key by key (``depends_on`` per dependency,
    as podman-compose merges it: the file's conditions stay unless overridden)."""
    for name, svc in ((extra or {}).get("services") or {}).items() if isinstance(extra, dict) else []:
        if isinstance(svc, dict):
            merged = {**services.get(name, {}), **svc}
            if "depends_on" in svc and "depends_on" in services.get(name, {}):
                merged["depends_on"] = merge_depends_on(services[name], svc)
            services[name] = merged


def load_project(
    service_dir: str, compose_file: str | None = None, environ: t.Mapping[str, str] | None = None, cache: ParsedCompose | None = None
) -> ComposeProject:
    """Read a service's compose file (``cache``: see ParsedCompose); raise PodopsError with file and line on any problem."""
    compose_file = compose_file or find_compose_file(service_dir)
    if compose_file is None:
        raise PodopsError(f"{service_dir} has no compose file (one of {', '.join(COMPOSE_FILE_NAMES)})")
    compose_name = os.path.basename(compose_file)
    data = load_yaml_file(compose_file, cache)
    if not isinstance(data, dict):
        raise PodopsError(f"{compose_name} must be a mapping with a 'services:' key")
    dotenv = _read_dotenv(service_dir, environ)
    variables: t.Mapping[str, str] = collections.ChainMap(environ if environ is not None else os.environ, dotenv)
    services = _file_services(data, compose_name)
    for name, svc in _included_services(service_dir, data, compose_name, variables).items():
        services.setdefault(name, svc)
    override = find_override_file(compose_file)
    if override is not None:
        _merge_override(services, load_yaml_file(override))
    if not services:
        raise PodopsError(f"{compose_name} has no services: add a 'services:' mapping with at least one service")
    name = data.get("name")
    settings = _settings(data.get("x-podops"), compose_name, services)
    profiles = active_profiles(variables, settings.profiles)
    inactive = {name: svc for name, svc in services.items() if not is_active(svc, profiles, compose_name, name)}
    active = {name: svc for name, svc in services.items() if name not in inactive}
    if not active:
        raise PodopsError(
            f"{compose_name}: no service is active: all have 'profiles:' and none of them is active "
            f"(active: {', '.join(profiles) or 'none'}); set COMPOSE_PROFILES in .env or x-podops.profiles"
        )
    project = ComposeProject(
        service_dir=service_dir,
        compose_file=compose_file,
        name=interpolate(str(name), variables) if name else None,
        services=active,
        settings=settings,
        profiles=profiles,
        inactive=inactive,
        dotenv=dotenv,
        env_files=_env_file_refs(service_dir, compose_name, active, variables),
        pod_setting=isinstance(data.get("x-podman"), dict) and "in_pod" in data["x-podman"],
        raw=data,
        override_file=override,
    )
    project.unset = unset_variables({key: value for key, value in data.items() if key != "x-podops"}, variables)
    check_unset_values(compose_name, active, variables, project.unset)
    # Interpolate what podops reads now: a required variable without a value (${NAME:?...}) fails this
    # service here, with its name, instead of whatever later step (a summary, another service's clash check).
    project.service_images(environ)
    project.container_names(project.name or "check", environ)
    project.published(environ)
    project.referenced_paths(environ)
    return project
