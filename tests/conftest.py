"""Every pytest suite here imports tests/smtp's helpers (qmail_harness finds
the throwaway installation)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "smtp"))
