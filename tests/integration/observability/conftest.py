"""The observability tests drive a server through the protocol helpers of tests/integration/commands."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
