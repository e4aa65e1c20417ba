# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of the podops modules: decrypt the env repo's ansible-vault files.

PRIVATE to the podops.gitops collection: no API guarantee for other code.

The modules run on the managed host, where no vault password is (nor should be). When a module meets
ansible-vault files it changes nothing and returns their ciphertexts as ``vault_needed``; this action
decrypts them here with the vault secrets of the run (``--vault-password-file``, ``--vault-id``, also
through ansible-pull) and runs the module once more with the plaintexts in a ``no_log`` option.
Repos without vault files cost one module run, as before.

On the local connection (a laptop run on localhost, ansible-pull, podops-pull, the webhook's runs) the module runs
in a Python process started straight from the installed collection instead of an AnsiballZ payload: building that
payload (finding and zipping every module_util) and importing from the zip cost more than a no-op reconcile of 100
services. Same interpreter, arguments, environment, check and diff mode and result; the arguments go through stdin,
never argv or the environment. It applies only where the payload would run on this very machine with this very
Python as this very user (no become, no async); ``PODOPS_LOCAL_MODULE=0`` on the controller turns it off.
That process keeps the bytecode it compiles under ``<ANSIBLE_HOME>/podops/pycache`` (``sys.pycache_prefix``, for that
process only, never beside the installed collection's files), also where ``PYTHONDONTWRITEBYTECODE`` is set: compiling
the collection's module_utils from source on every run cost about a tenth of a no-op. Python checks each cached file
against its source's mtime and size, so a changed or reinstalled collection is compiled again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MSG_NO_VAULT_SECRET = "encrypted with ansible-vault but no vault password was given; use --vault-password-file or --vault-id"  # noqa: S105
MSG_CANNOT_DECRYPT = "the vault password does not decrypt it (wrong password, or no --vault-id for its label)"


# Runs in the module's own process: ``ansible_collections`` is the collections folder the controller loaded the module
# from (plain path imports, no collection finder: it would read every runtime.yml first), then the module runs as
# AnsiballZ runs it (ansible.module_utils' own loader). argv[1]: the module's FQN; argv[2]: the collections folder;
# argv[3]: the bytecode cache folder (empty: none), set before anything is imported.
LOCAL_BOOTSTRAP = """\
import os, sys, types
if sys.argv[3]:
    sys.pycache_prefix = sys.argv[3]
    sys.dont_write_bytecode = False
package = types.ModuleType("ansible_collections")
package.__path__ = [os.path.join(sys.argv[2], "ansible_collections")]
sys.modules["ansible_collections"] = package
from ansible.module_utils._internal._ansiballz import _loader
_loader.run_module(json_params=sys.stdin.buffer.read(), profile='legacy', module_fqn=sys.argv[1], modlib_path='', extensions={})
"""
# ansible-core 2.19's loader, which LOCAL_BOOTSTRAP runs the module with, and the helpers around it. They are private
# to ansible-core and move between releases (2.21 has no ansible.vars.clean.remove_internal_keys): where any of them
# is missing the module goes as the usual payload, as on older cores.
try:
    from ansible.module_utils.common.json import Direction, get_module_encoder
    from ansible.vars.clean import remove_internal_keys

    HAS_MODULE_LOADER = importlib.util.find_spec("ansible.module_utils._internal._ansiballz._loader") is not None
except ImportError:
    HAS_MODULE_LOADER = False

# The module's own time limits end every command it runs; this only bounds a module that hangs in Python itself.
LOCAL_MODULE_TIMEOUT = 24 * 3600


def collections_root(module_path: str) -> str | None:
    """The folder that holds ``ansible_collections/`` for a module file of an installed collection, else None."""
    parts = os.path.abspath(module_path).split(os.sep)
    if "ansible_collections" not in parts:
        return None
    index = len(parts) - 1 - parts[::-1].index("ansible_collections")
    return os.sep.join(parts[:index]) or os.sep


def bytecode_cache() -> str:
    """The local module process's bytecode cache folder, made private to this user; empty where it cannot be made."""
    path = os.path.join(os.path.expanduser(str(C.config.get_config_value("ANSIBLE_HOME"))), "podops", "pycache")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return ""
    return path


def same_python(interpreter: str, executable: str) -> bool:
    """``interpreter`` is the Python running here: same file, and same folder (a venv's python is a symlink)."""
    if not interpreter or not os.path.isabs(interpreter):
        return False
    if os.path.dirname(os.path.abspath(interpreter)) != os.path.dirname(os.path.abspath(executable)):
        return False
    return os.path.realpath(interpreter) == os.path.realpath(executable)


class VaultActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _local_python(self, task_vars: dict[str, t.Any]) -> str | None:
        """The interpreter to run the module with in a local process, or None where the usual payload must go."""
        if os.environ.get("PODOPS_LOCAL_MODULE", "1") == "0" or C.DEFAULT_KEEP_REMOTE_FILES or not HAS_MODULE_LOADER:
            return None
        if getattr(self._connection, "transport", None) != "local" or self._play_context.become or self._task.async_val:
            return None
        interpreter = task_vars.get("ansible_python_interpreter")
        if not isinstance(interpreter, str):
            return None
        interpreter = str(self._templar.template(interpreter))
        return interpreter if same_python(interpreter, sys.executable) else None

    def _run_module(self, module_args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        interpreter = self._local_python(task_vars)
        name = self._task.resolved_action or self._task.action
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(name, collection_list=self._task.collections) if interpreter else None
        root = collections_root(found.plugin_resolved_path) if found is not None and found.resolved else None
        if interpreter is None or root is None or not name.startswith("podops.gitops."):
            return self._execute_module(module_args=module_args, task_vars=task_vars)
        args = dict(module_args)
        self._update_module_args(name, args, task_vars)
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(raw_environment_out=environment)
        env = dict(os.environ, **dict(getattr(self._connection._shell, "env", None) or {}))
        env.update({str(key): str(value) for key, value in environment.items()})
        encoder = get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)
        params = json.dumps({"ANSIBLE_MODULE_ARGS": args}, cls=encoder).encode()
        namespace, collection, module = name.split(".", 2)
        fqn = f"ansible_collections.{namespace}.{collection}.plugins.modules.{module}"
        self._display.vvv(f"podops: running {name} in a local process with {interpreter} from {root} (no AnsiballZ payload)")
        proc = subprocess.Popen(
            [interpreter, "-c", LOCAL_BOOTSTRAP, fqn, root, bytecode_cache()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(params, timeout=LOCAL_MODULE_TIMEOUT)
        except BaseException:
            # The task's own timeout (or Ctrl-C) ends the worker here: the module's processes go with it.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        res = {"rc": proc.returncode, "stdout": to_text(stdout, errors="surrogate_or_strict"), "stderr": to_text(stderr, errors="surrogate_or_strict")}
        data = self._parse_returned_data(res, "legacy")
        remove_internal_keys(data)
        return data

    def _decrypt(self, needed: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        vault = getattr(self._loader, "_vault", None)
        has_secrets = bool(vault is not None and getattr(vault, "secrets", None))
        plaintexts: dict[str, str] = {}
        errors: dict[str, str] = {}
        for path, ciphertext in needed.items():
            if not has_secrets:
                errors[path] = MSG_NO_VAULT_SECRET
                continue
            try:
                plaintexts[path] = to_text(vault.decrypt(ciphertext.encode("utf-8")), errors="surrogate_or_strict")
            except (AnsibleError, UnicodeError, ValueError):
                errors[path] = MSG_CANNOT_DECRYPT  # the exception text is not passed on: it could quote the file
        return plaintexts, errors

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        first = self._run_module(args, task_vars)
        needed = first.get("vault_needed")
        if not needed or first.get("failed"):
            result.update(first)
            return result
        plaintexts, errors = self._decrypt(needed)
        args.update(vault_plaintexts=plaintexts, vault_errors=errors, vault_provided=True)
        second = self._run_module(args, task_vars)
        result.update(second)
        return result
