"""The SCWS tests reuse the command tests' in-process harness (tests/integration/commands)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
