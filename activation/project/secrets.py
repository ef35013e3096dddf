"""`${ENV}` interpolation and redaction of secrets.

Values are resolved only where they are used (a destination's header, a warehouse URL), never
at load time, so a `Project` can be printed, diffed and serialised without holding a secret.
Every resolved value is remembered by the redactor, which scrubs it from anything we print.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Bounded repeats and a look-behind keep this linear: an unbounded scheme made a 1 MB value
# (a huge field in a plan) take minutes to redact.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.\-])(?P<scheme>[a-z][a-z0-9+.\-]{0,31}://)(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@/\s]{1,512})@", re.I
)


class MissingSecret(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"environment variable {self.name} is not set"


class Redactor:
    """Remembers secret values and scrubs them (and URL passwords) from text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        # Very short values would redact innocent text everywhere; they are not real secrets.
        if len(value) >= 4:
            with self._lock:
                self._secrets.add(value)

    def __call__(self, text: str) -> str:
        if "://" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, "***")
        return text


redact = Redactor()

# What vendors quote back in rejection messages ("Email address a@b.c is invalid"): emails and
# phone-like digit runs. Bounded repeats keep it linear on long messages.
_EMAIL_LIKE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}")
_PHONE_LIKE = re.compile(r"(?<![\w.])(?:\+|\()?\d[\d ().\-]{6,24}\d(?![\w.])")


def _phone(m: re.Match[str]) -> str:
    # A phone is written with a + or with spaces/parentheses; a bare run of digits or a date
    # (2026-01-01) is more likely a record id or a timestamp, which help more than they harm.
    text = m.group(0)
    digits = sum(ch.isdigit() for ch in text)
    phone = (text.startswith("+") and digits >= 7) or ((" " in text or "(" in text) and digits >= 9)
    return "<phone>" if phone else text


def scrub_personal_data(text: str) -> str:
    """`text` without email addresses and phone numbers: what the state keeps of a vendor's
    reason for rejecting a row (the row is named by its key; the person is not)."""
    return _PHONE_LIKE.sub(_phone, _EMAIL_LIKE.sub("<email>", text))


def env_refs(value: str) -> list[str]:
    """Names of the environment variables `value` refers to (without a default)."""
    return [m.group(1) for m in _REF.finditer(value) if m.group(2) is None]


def missing_env(value: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names `value` refers to (without a default) that are not set."""
    env = os.environ if environ is None else environ
    return [name for name in env_refs(value) if name not in env]


def fill_unset(value: str, placeholder: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with each reference to an unset variable (without a default) replaced by
    `placeholder`; every other reference is left as it is (`--sandbox`)."""
    env = os.environ if environ is None else environ
    return _REF.sub(lambda m: placeholder if m.group(2) is None and m.group(1) not in env else m.group(0), value)


def resolve_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace `${NAME}` / `${NAME:-default}`; raise MissingSecret for an unset NAME."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            resolved = env[name]
            redact.add(resolved)
            return resolved
        if default is not None:
            return default
        raise MissingSecret(name)

    return _REF.sub(sub, value)
