"""Per-destination limits: qmail-send memory per held recipient (100,000 held).

The setup and the targets: bench/cases/_destinations.py."""

from _destinations import held_memory as run  # noqa: F401
