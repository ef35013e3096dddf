"""The root of activation's own errors, and the exit code each kind means to the CLI.

Every failure the user can act on derives from `ActivationError`, so the CLI (and the daemon)
report it as a sentence with its exit code, never as a traceback; anything else reaching the
top is a bug. Exit codes: 1 a run or command failed, 2 the project is invalid, 3 the
warehouse or state store is unavailable right now (retry).
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


class ActivationError(Exception):
    """A failure activation can explain; its message says what happened and what to do."""

    exit_code: int = EXIT_FAILED


class StateError(ActivationError):
    """The state store holds something this version cannot use (read-only, newer schema, an
    unreadable journal entry): the message names it and how to get past it."""
