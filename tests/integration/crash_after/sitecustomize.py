"""Test-only fault injection for the A/B switch's crash tests, loaded through PYTHONPATH into the module
process that ansible-playbook starts: when ``PODOPS_TEST_CRASH_AFTER`` names a step, the process dies
(``os._exit(137)``, a real crash, not an exception) right after the switch made that step durable, having
written the step to the file ``PODOPS_TEST_CRASHED`` names.

Nothing of this is in the shipped collection: it replaces the no-op hook ``Switch.step_done`` as the
module ``_switch`` is imported (from the AnsiballZ payload, like any module_utils).
"""

from __future__ import annotations

import importlib.abc
import os
import sys

TARGET = "ansible_collections.podops.gitops.plugins.module_utils._switch"
STEP = os.environ.get("PODOPS_TEST_CRASH_AFTER")


def crash_after(_switch, step: str) -> None:
    if step == STEP:
        with open(os.environ["PODOPS_TEST_CRASHED"], "w", encoding="utf-8") as proof:  # for the test to see
            proof.write(step)
        os._exit(137)


class _Patcher(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)  # a loader of its own: the payload's one loads every module_utils
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.Switch.step_done = crash_after


if STEP:
    import importlib.util

    sys.meta_path.insert(0, _Patcher())
