"""Destination plugins, looked up by their `type:` in syncs.yaml.

One folder per vendor (`<vendor>/`: `spec.py`, `destination.py`, its own helpers), whose
`__init__.py` holds its plugin entry; shared here: the interface (`base.py`), the HTTP
client (`http.py`), ad identifiers (`identifiers.py`, `ad_audience.py`, `ad_spec.py`).
"""

from __future__ import annotations

from activation.destinations.plugin import DestinationPlugin, MissingExtra
from activation.destinations.registry import REGISTRY, build_destination, destination_class, spec_union

__all__ = ["REGISTRY", "DestinationPlugin", "MissingExtra", "build_destination", "destination_class", "spec_union"]
