# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the status page says about commits: their subject line, and a link to the git host.

- ``commit_link_base(remote)``: the web address of a commit, derived from the checkout's ``origin`` URL
  when it has the form GitHub, Gitea, Forgejo and GitLab use (``https://host/owner/repo(.git)``,
  ``git@host:owner/repo.git``, ``ssh://git@host[:port]/owner/repo.git``). Credentials in the URL are
  dropped; anything else (a local path, ``file://``, a URL with a query) gives no link.
- ``subjects(repo_dir, shas)``: the subject line of each commit the checkout has (a shallow clone may
  lack old ones), from one ``git cat-file --batch`` with a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import typing as t
import urllib.parse

SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1 or SHA-256 object names
HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
PATH_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
SCP_RE = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^@/:\s]+):(?P<path>[^\s]+)$")
# What a link base handed to the page must look like (the shim checks the broker's answer with it).
LINK_BASE_RE = re.compile(r"^https://[A-Za-z0-9.-]{1,253}(?:/[A-Za-z0-9_.-]{1,100}){2,8}/(?:-/)?commit/$")
MAX_SUBJECT = 160
MAX_COMMITS = 64
GIT_TIMEOUT_SECONDS = 5.0


def _repo_path(path: str) -> list[str] | None:
    parts = [part for part in path.strip("/").split("/") if part]
    if parts and parts[-1].endswith(".git"):
        parts[-1] = parts[-1][:-4]
    if not 2 <= len(parts) <= 8 or not all(PATH_PART_RE.fullmatch(part) and part not in (".", "..") for part in parts):
        return None
    return parts


def commit_link_base(remote: str | None) -> str | None:
    """``https://host/owner/repo/commit/`` (``/-/commit/`` on GitLab), or None when ``remote`` is no git
    host URL of a known form. Never returns the URL's user, password or port."""
    if not remote or len(remote) > 1000 or any(ch.isspace() or ord(ch) < 0x20 for ch in remote):
        return None
    if "://" in remote:
        try:
            parsed = urllib.parse.urlsplit(remote)
            host = parsed.hostname
        except ValueError:
            return None
        if parsed.scheme not in ("https", "http", "ssh", "git+ssh") or parsed.query or parsed.fragment or not host:
            return None
        path = parsed.path
    else:
        match = SCP_RE.fullmatch(remote)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    parts = _repo_path(path)
    if parts is None or not HOST_RE.fullmatch(host):
        return None
    host = host.lower()
    commit = "-/commit" if "gitlab" in host else "commit"
    return f"https://{host}/{'/'.join(parts)}/{commit}/"


def commit_link(base: str | None, sha: t.Any) -> str | None:
    if not base or not isinstance(sha, str) or not SHA_RE.fullmatch(sha):
        return None
    return base + sha


def clean_subject(text: str) -> str:
    """One line, printable, at most MAX_SUBJECT characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in text.strip().split("\n", 1)[0]).strip()
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1] + "…"


def parse_commit(raw: bytes) -> str:
    """The subject of a raw commit object: the first line after the headers."""
    _headers, _sep, message = raw.partition(b"\n\n")
    return clean_subject(message.decode("utf-8", errors="replace"))


async def _git(repo_dir: str, args: list[str], stdin: bytes = b"", env: t.Mapping[str, str] | None = None) -> bytes | None:
    """``git -C repo_dir ARGS`` with a time limit; its standard output, or None when it failed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            repo_dir,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(env) if env else None,
        )
    except OSError:
        return None
    try:
        out, _err = await asyncio.wait_for(proc.communicate(stdin), timeout=GIT_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return out if proc.returncode == 0 else None


async def remote_url(repo_dir: str, env: t.Mapping[str, str] | None = None) -> str | None:
    out = await _git(repo_dir, ["config", "--get", "remote.origin.url"], env=env)
    return out.decode(errors="replace").strip() if out else None


async def subjects(repo_dir: str, shas: t.Iterable[str], env: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """``{sha: subject}`` for the commits the checkout has; unknown or malformed names are left out."""
    wanted = sorted({sha for sha in shas if isinstance(sha, str) and SHA_RE.fullmatch(sha)})[:MAX_COMMITS]
    if not wanted:
        return {}
    out = await _git(repo_dir, ["cat-file", "--batch"], stdin="".join(f"{sha}\n" for sha in wanted).encode(), env=env)
    found: dict[str, str] = {}
    data = out or b""
    while data:
        header, _sep, data = data.partition(b"\n")
        fields = header.split()
        if len(fields) != 3:
            continue  # "<sha> missing"
        name, kind, size = fields[0].decode(errors="replace"), fields[1], int(fields[2]) if fields[2].isdigit() else 0
        body, data = data[:size], data[size + 1 :]
        if kind == b"commit" and name in wanted:
            found[name] = parse_commit(body)
    return found
