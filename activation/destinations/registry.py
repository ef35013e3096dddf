"""The destination types activation knows: the built-in ones, then those third-party
packages register under the entry-point group `activation.destinations`."""

from __future__ import annotations

import logging
from importlib import import_module
from importlib.metadata import entry_points
from typing import Annotated, Any, Union

from pydantic import Field

from activation.destinations.base import Destination
from activation.destinations.plugin import DestinationPlugin

ENTRY_POINT_GROUP = "activation.destinations"
#: Each is a package of activation.destinations defining PLUGIN (its spec only: no SDK).
BUILT_IN = (
    "file",
    "webhook",
    "hubspot",
    "salesforce",
    "meta_audience",
    "google_ads",
    "mailchimp",
    "iterable",
    "braze",
    "klaviyo",
    "intercom",
    "customerio",
    "zendesk",
)

log = logging.getLogger(__name__)


def _discover() -> dict[str, DestinationPlugin]:
    found: dict[str, DestinationPlugin] = {}
    for name in BUILT_IN:
        plugin = import_module(f"activation.destinations.{name}").PLUGIN
        found[plugin.type] = plugin
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"{ep.value} (from {ep.dist.name if ep.dist else 'an unknown distribution'})"
        try:
            plugin = ep.load()
        except Exception as e:  # a broken plugin must not break every command: say so, go on
            log.warning("destination plugin %r could not be loaded from %s: %s: %s", ep.name, where, type(e).__name__, e)
            continue
        if not isinstance(plugin, DestinationPlugin):
            log.warning("destination plugin %r: %s is not a DestinationPlugin; ignored", ep.name, where)
        elif plugin.type in found:
            log.warning("destination plugin %r: type %r is already registered; %s ignored", ep.name, plugin.type, where)
        else:
            found[plugin.type] = plugin
    return found


#: type -> its plugin entry
REGISTRY: dict[str, DestinationPlugin] = _discover()


def destination_class(type_: str) -> type[Destination]:
    return REGISTRY[type_].load()


def build_destination(name: str, spec: Any, project_dir: str) -> Destination:
    return destination_class(spec.type)(name, spec, project_dir)


def spec_union() -> Any:
    """What `destinations:` accepts: the registered specs, told apart by `type`."""
    # Union[...] of a tuple built at run time (ruff's UP007 rewrite drops the Union)
    return Annotated[Union[tuple(p.spec for p in REGISTRY.values())], Field(discriminator="type")]  # noqa: UP007
