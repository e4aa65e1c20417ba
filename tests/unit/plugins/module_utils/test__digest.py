# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_digest: what a service's digest covers, and what it must not."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from ansible_collections.podops.gitops.plugins.module_utils._common import PodopsError
from ansible_collections.podops.gitops.plugins.module_utils._digest import (
    MISSING,
    changed_files,
    digest_of,
    file_entry,
    file_map,
    git_commit,
    git_tracked_files,
    is_ignored,
    walk_files,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- file_entry ---------------------------------------------------------------------------------------


def test_file_entry_regular_file_is_mode_f_and_sha256_of_content(tmp_path):
    path = tmp_path / "app.conf"
    path.write_bytes(b"listen 80;\n")
    path.chmod(0o644)

    assert file_entry(str(path)) == ("f", sha(b"listen 80;\n"))


def test_file_entry_executable_file_is_mode_x(tmp_path):
    path = tmp_path / "entrypoint.sh"
    path.write_bytes(b"#!/bin/sh\nexec httpd\n")
    path.chmod(0o755)

    assert file_entry(str(path)) == ("x", sha(b"#!/bin/sh\nexec httpd\n"))


def test_file_entry_any_execute_bit_counts_as_executable(tmp_path):
    path = tmp_path / "tool"
    path.write_bytes(b"x")
    path.chmod(0o641)

    assert file_entry(str(path))[0] == "x"


def test_file_entry_symlink_is_hashed_by_target_text_not_followed(tmp_path):
    (tmp_path / "real.conf").write_bytes(b"one")
    link = tmp_path / "current.conf"
    link.symlink_to("real.conf")

    before = file_entry(str(link))
    (tmp_path / "real.conf").write_bytes(b"two: the target's content is not part of the link's entry")

    assert before == ("l", sha(b"real.conf"))
    assert file_entry(str(link)) == before


def test_file_entry_dangling_symlink_is_hashed_by_target(tmp_path):
    link = tmp_path / "secret.env"
    link.symlink_to("/nonexistent/podops/secret.env")

    assert file_entry(str(link)) == ("l", sha(b"/nonexistent/podops/secret.env"))


def test_file_entry_symlink_to_folder_is_not_followed(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("a")
    (tmp_path / "conf").symlink_to("conf.d")

    assert file_entry(str(tmp_path / "conf")) == ("l", sha(b"conf.d"))


def test_file_entry_missing_file_and_folder_are_none(tmp_path):
    (tmp_path / "folder").mkdir()

    assert file_entry(str(tmp_path / "nope.env")) is None
    assert file_entry(str(tmp_path / "folder")) is None


def test_file_entry_path_below_a_regular_file_is_missing_not_a_crash(tmp_path):
    (tmp_path / "secrets").write_text("not a folder")

    assert file_entry(str(tmp_path / "secrets" / "app.env")) is None


# --- digest_of / file_map: what changes the digest ----------------------------------------------------


def test_digest_format_is_stable():
    # Every service's recorded digest was made with this format: changing it would redeploy every service of
    # every host on upgrade. Change this value only together with a state migration.
    assert digest_of({"a.txt": "f:abc"}) == "17c545294f9b021cd5e407da9c52ddbec04b1d18a3cde196e38927120f6ac4d9"
    assert digest_of({}) == sha(b"")


def test_digest_does_not_depend_on_file_order():
    entries = {"b.conf": "f:2", "a.conf": "f:1", "conf/c": "x:3"}

    assert digest_of(entries) == digest_of(dict(reversed(list(entries.items()))))


@pytest.fixture
def service(tmp_path, write_tree):
    base = tmp_path / "web"
    write_tree(base, {"compose.yaml": "services: {web: {image: nginx}}\n", "conf/app.conf": "listen 80;\n", "run.sh": "#!/bin/sh\n"})
    return base


REL_FILES = ["compose.yaml", "conf/app.conf", "run.sh"]


def test_file_map_lists_mode_and_hash_per_relative_path(service):
    (service / "run.sh").chmod(0o755)
    (service / "conf" / "app.conf").chmod(0o644)

    assert file_map(str(service), REL_FILES) == {
        "compose.yaml": "f:" + sha(b"services: {web: {image: nginx}}\n"),
        "conf/app.conf": "f:" + sha(b"listen 80;\n"),
        "run.sh": "x:" + sha(b"#!/bin/sh\n"),
    }


def test_mode_change_changes_the_digest(service):
    (service / "run.sh").chmod(0o644)
    before = file_map(str(service), REL_FILES)
    (service / "run.sh").chmod(0o755)
    after = file_map(str(service), REL_FILES)

    assert digest_of(after) != digest_of(before)
    assert changed_files(before, after) == ["run.sh"]


def test_content_change_changes_the_digest(service):
    before = file_map(str(service), REL_FILES)
    (service / "conf" / "app.conf").write_text("listen 8080;\n")
    after = file_map(str(service), REL_FILES)

    assert digest_of(after) != digest_of(before)
    assert changed_files(before, after) == ["conf/app.conf"]


def test_rename_changes_the_digest(service):
    before = file_map(str(service), REL_FILES)
    os.rename(service / "conf" / "app.conf", service / "conf" / "site.conf")
    after = file_map(str(service), ["compose.yaml", "conf/site.conf", "run.sh"])

    assert sorted(after.values()) == sorted(before.values())  # same contents, other name
    assert digest_of(after) != digest_of(before)
    assert changed_files(before, after) == ["conf/app.conf", "conf/site.conf"]


def test_unchanged_folder_keeps_its_digest(service):
    assert digest_of(file_map(str(service), REL_FILES)) == digest_of(file_map(str(service), list(reversed(REL_FILES))))


def test_file_map_skips_listed_files_that_are_gone(service):
    # git ls-files still lists a tracked file deleted in the work tree: it is simply not part of the service.
    assert sorted(file_map(str(service), REL_FILES + ["deleted.conf"])) == REL_FILES


# --- ignore globs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "ignored", "kept"),
    [
        ("*.md", ["README.md", "docs/guide.md", "a/b/c.md"], ["README.txt", "compose.yaml", "md"]),
        ("docs/**", ["docs/a.txt", "docs/sub/b.png"], ["mydocs/a.txt", "docs.txt", "conf/docs/a.txt"]),
        ("docs/", ["docs/a.txt", "docs/sub/b.png"], ["mydocs/a.txt", "docs.txt"]),
        ("docs", ["docs/a.txt", "docs/sub/b.png"], ["docs.txt", "documents/a"]),
        ("conf/*.local", ["conf/app.local"], ["app.local", "conf/app.conf"]),
        ("README.md", ["README.md", "docs/README.md"], ["README.md.bak", "README"]),
    ],
)
def test_is_ignored(pattern, ignored, kept):
    assert [rel for rel in ignored if is_ignored(rel, [pattern])] == ignored
    assert [rel for rel in kept if is_ignored(rel, [pattern])] == []


def test_ignored_files_are_left_out_of_the_digest(tmp_path, write_tree):
    write_tree(tmp_path, {"compose.yaml": "c", "README.md": "one", "docs/a.txt": "x", "docs/sub/b.txt": "y", "conf/app.conf": "z"})
    rel_files = ["README.md", "compose.yaml", "conf/app.conf", "docs/a.txt", "docs/sub/b.txt"]
    ignore = ["*.md", "docs/**"]
    before = file_map(str(tmp_path), rel_files, ignore=ignore)

    write_tree(tmp_path, {"README.md": "two", "docs/a.txt": "changed", "docs/sub/b.txt": "changed"})
    after = file_map(str(tmp_path), rel_files, ignore=ignore)

    assert sorted(before) == ["compose.yaml", "conf/app.conf"]
    assert digest_of(after) == digest_of(before)


def test_ignore_never_drops_compose_and_env_files(tmp_path, write_tree):
    write_tree(tmp_path, {"compose.yaml": "services: {}", ".env": "A=1\n"})
    always = [("compose.yaml", str(tmp_path / "compose.yaml"), True), (".env", str(tmp_path / ".env"), False)]

    entries = file_map(str(tmp_path), ["compose.yaml", ".env"], always=always, ignore=["*.yaml", ".env", "*"])

    assert entries == {"compose.yaml": "f:" + sha(b"services: {}"), ".env": "f:" + sha(b"A=1\n")}


# --- file_map: files the project reads whether git tracks them or not -----------------------------------


def test_always_entries_outside_the_folder_are_hashed_under_their_reference(tmp_path, write_tree):
    write_tree(tmp_path, {"services/web/compose.yaml": "c", "secrets/app.env": "TOKEN=1\n"})
    service_dir = tmp_path / "services" / "web"
    always = [("../../secrets/app.env", os.path.normpath(str(service_dir / "../../secrets/app.env")), True)]

    entries = file_map(str(service_dir), ["compose.yaml"], always=always)

    assert entries == {"compose.yaml": "f:" + sha(b"c"), "../../secrets/app.env": "f:" + sha(b"TOKEN=1\n")}


def test_required_missing_env_file_is_an_error_naming_the_path(tmp_path):
    missing = str(tmp_path / "secrets" / "app.env")

    with pytest.raises(PodopsError) as err:
        file_map(str(tmp_path), [], always=[("../secrets/app.env", missing, True)])

    assert missing in str(err.value)
    assert "../secrets/app.env" in str(err.value)
    assert "required: false" in str(err.value)


def test_optional_missing_env_file_is_recorded_as_missing(tmp_path):
    entries = file_map(str(tmp_path), [], always=[(".env", str(tmp_path / ".env"), False)])

    assert entries == {".env": MISSING}
    assert MISSING == "missing"


def test_creating_an_optional_env_file_changes_the_digest(tmp_path):
    always = [(".env", str(tmp_path / ".env"), False)]
    before = file_map(str(tmp_path), [], always=always)
    (tmp_path / ".env").write_text("TAG=2\n")
    after = file_map(str(tmp_path), [], always=always)

    assert digest_of(after) != digest_of(before)
    assert changed_files(before, after) == [".env"]


# --- changed_files -------------------------------------------------------------------------------------


def test_changed_files_lists_added_removed_and_modified_sorted():
    before = {"a": "f:1", "b": "f:2", "c": "f:3", "same": "f:4"}
    after = {"same": "f:4", "c": "x:3", "b": "f:2b", "d": "f:5"}

    assert changed_files(before, after) == ["a", "b", "c", "d"]


def test_changed_files_without_a_previous_map_lists_every_file():
    assert changed_files(None, {"z": "f:1", "a": "f:2"}) == ["a", "z"]


def test_changed_files_of_equal_maps_is_empty():
    assert changed_files({"a": "f:1"}, {"a": "f:1"}) == []


# --- git ----------------------------------------------------------------------------------------------


def test_git_tracked_files_lists_only_tracked_files_of_the_subfolder(tmp_path, git, git_repo, runner, write_tree):
    repo = git_repo(
        tmp_path / "repo",
        {
            "services/web/compose.yaml": "c",
            "services/web/conf/my site é.conf": "x",
            "services/db/compose.yaml": "d",
            "local.yml": "l",
        },
    )
    write_tree(repo, {"services/web/junk.log": "untracked", "services/web/data/db.sqlite": "untracked"})
    write_tree(repo, {"services/db/init.sql": "staged, not committed"})
    git(repo, "add", "services/db/init.sql")

    assert git_tracked_files(runner, repo, "services") == [
        "services/db/compose.yaml",
        "services/db/init.sql",
        "services/web/compose.yaml",
        "services/web/conf/my site é.conf",
    ]


def test_git_tracked_files_paths_are_relative_to_repo_dir_inside_a_bigger_checkout(tmp_path, git_repo, runner):
    # The env repo may be a folder of a bigger repo (examples/env-repo in this collection).
    top = git_repo(tmp_path / "mono", {"examples/env/services/web/compose.yaml": "c", "other/x": "y"})

    assert git_tracked_files(runner, os.path.join(top, "examples", "env"), "services") == ["services/web/compose.yaml"]


def test_git_tracked_files_outside_a_repo_is_none(tmp_path, runner, write_tree):
    write_tree(tmp_path / "plain", {"services/web/compose.yaml": "c"})

    assert git_tracked_files(runner, str(tmp_path / "plain"), "services") is None


def test_git_commit_is_head(tmp_path, git, git_repo, runner):
    repo = git_repo(tmp_path / "repo", {"a": "1"})

    commit = git_commit(runner, repo)

    assert commit == git(repo, "rev-parse", "HEAD").strip()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)


def test_git_commit_is_none_outside_a_repo_and_before_the_first_commit(tmp_path, git, runner):
    (tmp_path / "plain").mkdir()
    (tmp_path / "fresh").mkdir()
    git(tmp_path / "fresh", "init", "-q")

    assert git_commit(runner, str(tmp_path / "plain")) is None
    assert git_commit(runner, str(tmp_path / "fresh")) is None


def test_walk_files_lists_files_and_links_and_skips_git(tmp_path, write_tree):
    write_tree(
        tmp_path,
        {
            ".git/config": "x",
            ".git/objects/ab/cdef": "x",
            "compose.yaml": "c",
            ".env": "A=1",
            "conf/app.conf": "a",
            "conf/nested/.git/HEAD": "x",
            "conf/nested/b.conf": "b",
        },
    )
    (tmp_path / "current").symlink_to("conf")  # a link to a folder is one entry, not descended
    (tmp_path / "dangling").symlink_to("nowhere")

    assert walk_files(str(tmp_path)) == [".env", "compose.yaml", "current", "dangling", "conf/app.conf", "conf/nested/b.conf"]


def test_vault_file_is_digested_by_its_plaintext(tmp_path):
    from ansible_collections.podops.gitops.plugins.module_utils._digest import Secrets

    first = tmp_path / "one.env"
    second = tmp_path / "two.env"
    first.write_text("$ANSIBLE_VAULT;1.1;AES256\n6161\n")
    second.write_text("$ANSIBLE_VAULT;1.1;AES256\n6262\n")  # another encryption of the same plaintext
    unknown = Secrets()
    assert file_map(str(tmp_path), ["one.env"], secrets=unknown)["one.env"] != file_map(str(tmp_path), ["two.env"], secrets=unknown)["two.env"]
    assert unknown.found == {str(first.resolve()): first.read_text(), str(second.resolve()): second.read_text()}

    known = Secrets({str(first): "A=1\n", str(second): "A=1\n"}, provided=True)
    one = file_map(str(tmp_path), ["one.env"], secrets=known)["one.env"]
    two = file_map(str(tmp_path), ["two.env"], secrets=known)["two.env"]
    assert one == two == "f:" + hashlib.sha256(b"A=1\n").hexdigest()
    assert known.found == {} and known.is_vault(str(first))
