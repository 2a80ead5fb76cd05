"""Per-destination limits: time to deliver a capped queue against the ideal, stock and Postfix.

See bench/cases/_destinations.py for the setup and the targets."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_destinations", Path(__file__).with_name("_destinations.py"))
_destinations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_destinations)


def run(ctx):
    return _destinations.scheduling(ctx)
