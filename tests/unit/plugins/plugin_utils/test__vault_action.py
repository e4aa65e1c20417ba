# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_vault_action: where a podops module may run in a local process instead of an AnsiballZ payload."""

from __future__ import annotations

import os
import sys

from ansible_collections.podops.gitops.plugins.plugin_utils._vault_action import bytecode_cache, collections_root, same_python


def test_collections_root_is_the_folder_that_holds_ansible_collections():
    module = "/home/me/.ansible/collections/ansible_collections/podops/gitops/plugins/modules/compose_deploy.py"

    assert collections_root(module) == "/home/me/.ansible/collections"
    # the innermost ansible_collections: a collection installed inside another checkout's tree
    nested = "/src/ansible_collections/podops/gitops/.work/ansible_collections/podops/gitops/plugins/modules/x.py"
    assert collections_root(nested) == "/src/ansible_collections/podops/gitops/.work"
    assert collections_root("/usr/share/ansible/plugins/modules/x.py") is None


def test_same_python_is_this_interpreter_in_this_folder(tmp_path):
    assert same_python(sys.executable, sys.executable)
    # a venv's python is a symlink to the base interpreter, which cannot import the venv's ansible
    link = tmp_path / "python3"
    link.symlink_to(os.path.realpath(sys.executable))
    assert not same_python(str(link), sys.executable)
    assert not same_python(os.path.realpath(sys.executable), sys.executable) or os.path.realpath(sys.executable) == sys.executable
    assert not same_python("python3", sys.executable)  # not a path: Ansible would look it up on the host
    assert not same_python("", sys.executable)


def test_the_bytecode_cache_is_a_private_folder_under_ansible_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "home"))

    cache = bytecode_cache()

    assert cache == str(tmp_path / "home" / "podops" / "pycache")
    assert os.stat(cache).st_mode & 0o777 == 0o700
    # where it cannot be made the module still runs, without a cache
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "file"))
    assert bytecode_cache() == ""
