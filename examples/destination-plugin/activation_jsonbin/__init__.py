"""The plugin entry: activation reads it (and the spec) for every project; the class is
imported only when a project uses `type: jsonbin`."""

from activation.destinations.plugin import DestinationPlugin
from activation_jsonbin.spec import JsonBinSpec

PLUGIN = DestinationPlugin(
    type="jsonbin",
    spec=JsonBinSpec,
    destination="activation_jsonbin.destination:JsonBinDestination",
)
