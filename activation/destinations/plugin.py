"""One entry per destination type: everything activation needs to know to offer it.

A vendor's package (`activation/destinations/<vendor>/__init__.py`) defines its entry as
`PLUGIN`; a third-party package registers one under the entry-point group
`activation.destinations` (see the README, "Writing a destination"). The entry holds the
spec model (what `destinations:` accepts for the type) and, as "module:attribute" paths
imported only when used, the destination class and the `--sandbox` hook: a project that
does not use a vendor never imports its SDK, and one that lacks it is told what to install.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from activation.destinations.base import ConfigError, Destination
from activation.extras import needs

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class MissingExtra(ConfigError):
    """The destination's SDK is not installed; the message names what to install."""


@dataclass(frozen=True)
class DestinationPlugin:
    #: The `type:` of a destination in syncs.yaml.
    type: str
    #: The pydantic model of its settings, with `type: Literal["<type>"]`. Its module must not
    #: import the vendor's SDK: every spec is loaded to read any syncs.yaml.
    spec: builtins.type[BaseModel]  # (`type` is also a field of this class)
    #: The `Destination` subclass, as "module:Class" (imported on first use).
    destination: str
    #: The extra of activation-etl that installs what the class needs (None: nothing, or a
    #: third-party plugin, whose own distribution brings it).
    extra: str | None = None
    #: distribution -> the module it provides: checked before the class is imported.
    requires: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: `--sandbox`: a "module:function" that stands a local emulator in for the destination
    #: (see activation_emulators.sandbox); None: the type cannot be rehearsed.
    sandbox: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.type):
            raise ValueError(f"destination type {self.type!r}: use lower-case letters, digits and _")
        declared = self.spec.model_fields.get("type")
        tags = get_args(declared.annotation) if declared and get_origin(declared.annotation) is Literal else ()
        if tags != (self.type,):
            raise ValueError(f"the spec of destination type {self.type!r} needs a field `type: Literal[{self.type!r}]`")
        for path in (self.destination, self.sandbox):
            if path is not None and not _PATH.match(path):
                raise ValueError(f"destination type {self.type!r}: {path!r} is not a 'module:attribute' path")

    def missing(self) -> str | None:
        """What to install before this type can be used; None when all is there."""
        return needs(f"destination type {self.type!r}", self.extra, self.requires)

    def load(self) -> builtins.type[Destination]:
        """The destination class; MissingExtra when its SDK is not installed."""
        if (problem := self.missing()) is not None:
            raise MissingExtra(problem)
        cls = load_object(self.destination)
        if not (isinstance(cls, type) and issubclass(cls, Destination)):
            raise TypeError(f"{self.destination} is not a Destination subclass")
        return cls

    def sandbox_hook(self) -> Callable[..., Any] | None:
        return load_object(self.sandbox) if self.sandbox else None


def load_object(path: str) -> Any:
    """The object a "module:attribute" path names, importing its module."""
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)
