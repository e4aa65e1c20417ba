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
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MSG_NO_VAULT_SECRET = "encrypted with ansible-vault but no vault password was given; use --vault-password-file or --vault-id"  # noqa: S105
MSG_CANNOT_DECRYPT = "the vault password does not decrypt it (wrong password, or no --vault-id for its label)"


class VaultActionModule(ActionBase):
    TRANSFERS_FILES = False

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
        first = self._execute_module(module_args=args, task_vars=task_vars)
        needed = first.get("vault_needed")
        if not needed or first.get("failed"):
            result.update(first)
            return result
        plaintexts, errors = self._decrypt(needed)
        args.update(vault_plaintexts=plaintexts, vault_errors=errors, vault_provided=True)
        second = self._execute_module(module_args=args, task_vars=task_vars)
        result.update(second)
        return result
