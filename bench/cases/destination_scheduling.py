"""Per-destination limits: time to deliver a capped queue against the ideal, stock and Postfix.

The setup and the targets: bench/cases/_destinations.py."""

from _destinations import scheduling as run  # noqa: F401
