# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Digests of service folders: the one place podops decides whether a service's inputs changed.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

A service's digest covers, by relative path + mode + content:
- the git-tracked files of its folder (all files when the env repo is not a git checkout), so untracked
  junk and build output never redeploy anything;
- the files the project reads even when git ignores them: the compose file, ``.env`` and every
  ``env_file`` it references, inside or outside the folder (``../../secrets/app.env``);
- minus the ``x-podops.ignore`` globs (never the compose or env files).
Symlinks are hashed by their target text, never followed. The mode is git's: executable or not.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import typing as t

from ._common import TIMEOUT_DEFAULTS, PodopsError, Runner

MISSING = "missing"
VAULT_HEADER = b"$ANSIBLE_VAULT;"


class Secrets:
    """ansible-vault files: their plaintexts (decrypted on the controller by the action plugin, never
    written anywhere but the runtime folder) and the encrypted files met while digesting.

    Keys are real paths. A vault file is digested by its plaintext, so re-encrypting the same content
    changes nothing; without its plaintext it is digested as it is and listed in ``found``.
    """

    def __init__(self, plaintexts: t.Mapping[str, str] | None = None, errors: t.Mapping[str, str] | None = None, provided: bool = False):
        self.plaintexts = {os.path.realpath(path): text.encode("utf-8") for path, text in (plaintexts or {}).items()}
        self.errors = {os.path.realpath(path): message for path, message in (errors or {}).items()}
        self.provided = provided  # the controller has answered (phase two of a run with vault files)
        self.found: dict[str, str] = {}  # real path -> ciphertext, for vault files without a plaintext
        self.seen: set[str] = set()

    def plaintext(self, path: str) -> bytes | None:
        return self.plaintexts.get(os.path.realpath(path))

    def error(self, path: str) -> str | None:
        return self.errors.get(os.path.realpath(path))

    def is_vault(self, path: str) -> bool:
        return os.path.realpath(path) in self.seen


def git_commit(runner: Runner, repo_dir: str) -> str | None:
    """HEAD of the checkout that holds ``repo_dir``, or None when it is not a git checkout."""
    args = ["git", "-c", f"safe.directory={os.path.realpath(repo_dir)}", "-C", repo_dir, "rev-parse", "--verify", "-q", "HEAD"]
    rc, out, _err = runner(args, timeout=TIMEOUT_DEFAULTS["podman"])
    commit = out.strip()
    return commit if rc == 0 and commit else None


def git_tracked_files(runner: Runner, repo_dir: str, sub_dir: str) -> list[str] | None:
    """Files git tracks under ``repo_dir/sub_dir``, relative to ``repo_dir``; None when not a git checkout.

    One ``git ls-files`` for the whole services folder: this is on the hot path of every reconcile.
    """
    rc, out, _err = runner(
        [
            "git",
            "-c",
            f"safe.directory={os.path.realpath(repo_dir)}",
            "-C",
            repo_dir,
            "ls-files",
            "-z",
            "--cached",
            "--",
            sub_dir,
        ],
        timeout=TIMEOUT_DEFAULTS["podman"],
    )
    if rc != 0:
        return None
    return [path for path in out.split("\0") if path]


def walk_files(base_dir: str) -> list[str]:
    """Every file and symlink under ``base_dir`` (relative paths), for env repos that are not git checkouts."""
    found = []
    for root, dirs, files in os.walk(base_dir):
        dirs[:] = sorted(d for d in dirs if d != ".git" and not os.path.islink(os.path.join(root, d)))
        links = [d for d in os.listdir(root) if os.path.islink(os.path.join(root, d)) and os.path.isdir(os.path.join(root, d))]
        for name in sorted(files + links):
            found.append(os.path.relpath(os.path.join(root, name), base_dir))
    return found


def file_entry(path: str, secrets: Secrets | None = None) -> tuple[str, str] | None:
    """(mode, sha256) of one file: mode ``f`` regular, ``x`` executable, ``l`` symlink (hash of the target).
    An ansible-vault file is hashed by its plaintext when ``secrets`` has it."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise PodopsError(f"cannot read {path}: {exc.strerror}; podops needs read access to every file of a service") from exc
    if stat.S_ISLNK(info.st_mode):
        return "l", hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
    if not stat.S_ISREG(info.st_mode):
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            first = handle.read(1 << 20)
            if secrets is not None and first.startswith(VAULT_HEADER):
                real = os.path.realpath(path)
                secrets.seen.add(real)
                plaintext = secrets.plaintext(real)
                if plaintext is not None:
                    return ("x" if info.st_mode & 0o111 else "f"), hashlib.sha256(plaintext).hexdigest()
                first += handle.read()
                secrets.found[real] = first.decode("ascii", errors="replace")
            digest.update(first)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise PodopsError(f"cannot read {path}: {exc.strerror}; podops needs read access to every file of a service") from exc
    return ("x" if info.st_mode & 0o111 else "f"), digest.hexdigest()


def is_ignored(rel_path: str, patterns: t.Iterable[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatchcase(rel_path, pattern) or fnmatch.fnmatchcase(rel_path, pattern + "/*"):
            return True
        if "/" not in pattern and fnmatch.fnmatchcase(os.path.basename(rel_path), pattern):
            return True
    return False


def file_map(
    service_dir: str,
    rel_files: t.Iterable[str],
    always: t.Iterable[tuple[str, str, bool]] = (),
    ignore: t.Iterable[str] = (),
    secrets: Secrets | None = None,
) -> dict[str, str]:
    """``{relative path: "mode:sha256"}`` for a service.

    ``rel_files`` are paths relative to ``service_dir`` (tracked files); ``always`` are
    ``(key, absolute path, required)`` for the files the project reads whether git tracks them or not.
    """
    ignore = list(ignore)
    entries: dict[str, str] = {}
    for rel in rel_files:
        if ignore and is_ignored(rel, ignore):
            continue
        entry = file_entry(os.path.join(service_dir, rel), secrets)
        if entry is not None:
            entries[rel] = f"{entry[0]}:{entry[1]}"
    missing: list[str] = []
    for key, path, required in always:
        entry = file_entry(path, secrets)
        if entry is None:
            if required:
                named = key if key == path else f"{key} ({path})"
                if named not in missing:
                    missing.append(named)
            entries[key] = MISSING
        else:
            entries[key] = f"{entry[0]}:{entry[1]}"
    if missing:
        raise PodopsError(
            f"{'a file' if len(missing) == 1 else f'{len(missing)} files'} the compose file reads "
            f"{'does' if len(missing) == 1 else 'do'} not exist: {', '.join(missing)}; create "
            f"{'it' if len(missing) == 1 else 'them'} (an env_file entry can be marked 'required: false')"
        )
    return entries


def digest_of(entries: t.Mapping[str, str]) -> str:
    """One sha256 over the sorted (path, mode, content hash) entries."""
    digest = hashlib.sha256()
    for rel in sorted(entries):
        digest.update(os.fsencode(rel) + b"\0" + entries[rel].encode() + b"\n")
    return digest.hexdigest()


def changed_files(before: t.Mapping[str, str] | None, after: t.Mapping[str, str]) -> list[str]:
    """Paths added, removed or modified between two file maps, sorted."""
    before = before or {}
    return sorted(rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel))
