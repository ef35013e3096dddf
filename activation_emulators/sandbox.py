"""`--sandbox`: rehearse a project end to end without touching a real account.

Every destination is pointed at a local emulator started for this command (HubSpot, whose
account gets a property for each mapped field, typed from the model; Salesforce, Mailchimp,
Meta, Google Ads, a webhook receiver; files go under `.activation/sandbox/`), the warehouse is
opened read-only with models as temporary tables (as `plan` does), and the state lives in
a throwaway SQLite file: a sandbox run is always a first full load, through the real SDKs,
and leaves the project's real state and warehouse untouched.

Each destination type's plugin entry names its hook (`sandbox="module:function"`), in that
vendor's folder here: `stand_in(stack, spec, syncs)` starts the emulator on `stack` and answers
a `StandIn` whose spec holds the credentials the emulator accepts, for whichever auth style the
project uses. A type without a hook cannot be rehearsed (a configuration error).

No credential is needed: a `${NAME}` left unset in a stand-in's spec (a field the hook does
not know, a third-party plugin's) is replaced by a placeholder, so a sandbox never fails with
"environment variable … is not set".
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activation.destinations import REGISTRY
from activation.extras import install_line
from activation.project.loader import LoadedProject, ProjectError
from activation.project.secrets import fill_unset, missing_env

SANDBOX_TOKEN = "sandbox-token"


@dataclass
class StandIn:
    """What a destination type's sandbox hook answers: the destination's spec pointed at the
    emulator it started, and how the sandbox reports and prepares that emulator."""

    spec: Any
    emulator: Any = None  # None: nothing was started (a file)
    #: destination name -> one line on what the emulator holds after the run
    summary: Callable[[str], str] | None = None
    #: (session, the prepared syncs to this destination) -> None: set up the emulated account
    #: from the models, before anything is sent (HubSpot: typed properties)
    prepare: Callable[[Any, dict[str, Any]], None] | None = None


@dataclass
class Sandbox:
    loaded: LoadedProject  # the project with every destination pointed at an emulator
    state_url: str
    emulators: dict[str, Any] = field(default_factory=dict)  # destination name -> emulator
    stand_ins: dict[str, StandIn] = field(default_factory=dict)  # destination name -> its stand-in

    def summary(self) -> list[str]:
        return [s.summary(name) for name, s in self.stand_ins.items() if s.summary is not None]

    def add_properties(self, session: Any, prepared: dict[str, Any]) -> None:
        """Set up each emulated account for the syncs it serves, from their prepared models
        (HubSpot: every property its syncs map and it lacks, typed from the model)."""
        syncs = self.loaded.project.syncs
        for name, stand_in in self.stand_ins.items():
            if stand_in.prepare is not None:
                stand_in.prepare(session, {n: ps for n, ps in prepared.items() if syncs[n].to == name})


@contextmanager
def sandbox(loaded: LoadedProject) -> Iterator[Sandbox]:
    p = loaded.project
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="activation-sandbox-")))
        stand_ins: dict[str, StandIn] = {}
        for name, spec in p.destinations.items():
            syncs = [s for s in p.syncs.values() if s.to == name]
            stand_in = _hook(loaded, name, spec.type)(stack, spec, syncs)
            stand_in.spec = without_unset_env(stand_in.spec)
            stand_ins[name] = stand_in
        project = p.model_copy(update={"destinations": {name: s.spec for name, s in stand_ins.items()}})
        emulators = {name: s.emulator for name, s in stand_ins.items() if s.emulator is not None}
        yield Sandbox(
            LoadedProject(project, loaded.root, loaded.file, loaded.locations), f"sqlite:///{tmp / 'state.db'}", emulators, stand_ins
        )


def without_unset_env(spec: Any) -> Any:
    """`spec` with every unset `${NAME}` (without a default) in its values replaced by a
    placeholder; references to variables that are set are left for the destination to resolve."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return fill_unset(value, SANDBOX_TOKEN) if missing_env(value) else value
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(fill(v) for v in value)
        return value

    update = {name: fill(getattr(spec, name)) for name in type(spec).model_fields}
    return spec.model_copy(update={k: v for k, v in update.items() if v is not getattr(spec, k)})


def _hook(loaded: LoadedProject, name: str, type_: str) -> Callable[..., StandIn]:
    """The sandbox hook of destination `name`'s type; a configuration error when it has none
    or cannot be imported."""
    try:
        hook = REGISTRY[type_].sandbox_hook()
    except ModuleNotFoundError as e:
        problem = f"--sandbox needs the sandbox extra: {install_line('sandbox')} ({e})"
        raise ProjectError([loaded.issue(problem, "destinations", name, "type")]) from e
    if hook is None:
        raise ProjectError(
            [loaded.issue(f"destination type {type_!r} has no sandbox: its plugin names no sandbox hook", "destinations", name, "type")]
        )
    return hook  # type: ignore[no-any-return]


def file_stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    """Files go under .activation/sandbox/ instead of their real place."""
    emulators_path = Path(".activation") / "sandbox" / Path(spec.path).name
    return StandIn(spec.model_copy(update={"path": str(emulators_path)}))
