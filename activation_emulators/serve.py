"""`activation emulate`: try a project against local emulators that live between runs.

`--sandbox` starts emulators for one command and forgets everything; here they keep running
(until Ctrl-C) so that `plan`, `run`, `status`, a daemon… work on the project's real state
against them, run after run. Each destination gets the emulator its sandbox hook starts (the
same setup: HubSpot properties typed from the models, Salesforce objects and fields, the
Mailchimp audience and merge tags…); file destinations are left as they are. What to set to
point the project at them is printed: `export NAME=value` for a setting written as `${NAME}`,
else the value to put in syncs.yaml.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from activation.project.loader import LoadedProject
from activation.project.secrets import _REF, env_refs
from activation_emulators.sandbox import SANDBOX_TOKEN, sandbox


@dataclass
class Setting:
    destination: str
    field: str
    value: Any
    env: str | None  # the variable the project reads it from, when the setting is exactly `${NAME}`
    written: Any  # what syncs.yaml holds

    def line(self) -> str:
        if self.env is not None:
            return f"export {self.env}={_shell(self.value)}"
        return (
            f"# destinations.{self.destination}.{self.field}: {self.value if self.value is not None else 'null'}"
            f"   (syncs.yaml: {self.written!r}; write ${{SOME_NAME}} there to set it from the environment)"
        )


@dataclass
class Emulated:
    settings: list[Setting] = field(default_factory=list)
    summary: Callable[[], list[str]] = lambda: []

    def lines(self) -> list[str]:
        return [s.line() for s in self.settings]


@contextmanager
def emulate(loaded: LoadedProject) -> Iterator[Emulated]:
    """Start an emulator for every destination of `loaded` (file destinations excepted), set
    up what its syncs need from the models, and yield what to set to use them."""
    from activation.session import Session

    with sandbox(loaded) as box:
        with Session(box.loaded, dry_run=True, sandbox_state=box.state_url) as s:
            # the warehouse is read (models → property types) and released before yielding:
            # the project's own commands need it while the emulators run
            box.add_properties(s, s.prepare(list(loaded.project.syncs)))
        settings: list[Setting] = []
        for name, real in loaded.project.destinations.items():
            if real.type == "file":
                continue
            stood_in = box.stand_ins[name].spec
            for f in type(real).model_fields:
                was, now = getattr(real, f), getattr(stood_in, f)
                if was == now or f in ("bulk_poll_seconds",):
                    continue
                if (env := _only_ref(was)) is not None and now is not None:
                    settings.append(Setting(name, f, now, env, was))
                    continue
                # the emulator does not need this setting (another auth style's, a header): any
                # value of a variable it names will do, but a run needs the variable set
                unset = [n for n in _refs(was) if n not in os.environ and n not in {x.env for x in settings}]
                settings += [Setting(name, f, SANDBOX_TOKEN, n, was) for n in unset]
                if not _refs(was) and now is not None:
                    settings.append(Setting(name, f, now, None, was))
        yield Emulated(settings, box.summary)


def _only_ref(value: Any) -> str | None:
    """NAME when `value` is exactly `${NAME}` or `${NAME:-default}`."""
    if not isinstance(value, str):
        return None
    m = _REF.fullmatch(value.strip())
    return m.group(1) if m else None


def _refs(value: Any) -> list[str]:
    """Every variable `value` (a string, or a mapping/list of them) names without a default."""
    if isinstance(value, str):
        return env_refs(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return [n for v in items for n in _refs(v)]


def _shell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text.replace("'", "'\"'\"'") + "'"


def serve(loaded: LoadedProject, out: Callable[[str], None], stop: threading.Event) -> None:
    """Run the emulators until `stop` is set, printing what to set first."""
    with emulate(loaded) as emulated:
        out("# the emulators of this project run until Ctrl-C; in another shell:")
        for line in emulated.lines():
            out(line)
        for line in emulated.summary():
            out(f"# {line}")
        out("# emulators ready")
        stop.wait()
