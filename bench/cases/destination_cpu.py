"""Per-destination limits: qmail-send CPU per delivery with 10,000 destination lines against none.

The setup and the targets: bench/cases/_destinations.py."""

from _destinations import cpu_per_delivery as run  # noqa: F401
