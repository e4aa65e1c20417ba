# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Log lines that a request cannot forge: the one home of escaping for the shim's log.

``clean(value)`` is what every request-derived string (path, method, remote address, header values, event
names, reasons built from a payload, exception text) goes through before it is put in a log message: CR, LF,
other control and non-printable characters (ANSI escapes, U+2028, lone surrogates from non-UTF-8 bytes)
come out as backslash escapes, and the value is capped. ``SafeFormatter`` is the safety net under it, for
every logger (aiohttp's too): the message of a record is escaped the same way, and every further line of a
traceback is indented with ``  | ``, so no text from outside can start a line that looks like a record.
"""

from __future__ import annotations

import logging
import sys
import typing as t

MAX_CHARS = 200


def clean(value: t.Any, limit: int = MAX_CHARS) -> str:
    """``value`` as one printable log line: escapes instead of control characters, at most ``limit`` chars."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    return text if len(text) <= limit else text[:limit] + "..."


NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(char: str) -> str:
    return NAMED.get(char) or repr(char)[1:-1]


class SafeFormatter(logging.Formatter):
    """Escapes each record's message; keeps tracebacks readable but unable to fake a record."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = clean(record.message, limit=4000)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    lines = text.replace("\r", "\\r").split("\n")
    return "\n".join("  | " + clean(line, limit=4000) for line in lines)


def setup(level: int = logging.INFO) -> None:
    """The shim's logging: one line per record on stderr, through SafeFormatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
