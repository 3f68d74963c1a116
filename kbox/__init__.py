"""kbox: a Kubernetes cluster in a box.

The parts (see DESIGN.md): store, api, scheduler, controllers, node, runtime,
cluster, cli, tui. Everything talks through the API; only kbox.tui imports
Textual.
"""

__version__ = "0.1.0"
