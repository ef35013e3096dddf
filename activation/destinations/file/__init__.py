"""The `file` destination: a CSV or JSONL file holding exactly the delivered rows."""

from __future__ import annotations

from activation.destinations.file.spec import FileDestinationSpec
from activation.destinations.plugin import DestinationPlugin

PLUGIN = DestinationPlugin(
    type="file",
    spec=FileDestinationSpec,
    destination="activation.destinations.file.destination:FileDestination",
    sandbox="activation_emulators.sandbox:file_stand_in",
)
