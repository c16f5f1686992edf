"""cli/allocator.py: after `tune()`, buffers the size of a 512 KiB block allocated and freed over and
over reuse the process's memory instead of touching fresh pages each time (minor page faults)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# In a fresh interpreter (the allocator's state is per process): eight 512 KiB buffers at once, as
# when several blocks are in flight, allocated, written and freed 100 times; prints whether tune()
# changed the settings and the minor page faults of the loop.
_PROGRAM = """
import resource, sys
from parsec_server.cli.allocator import tune
tuned = tune() if sys.argv[1] == "tune" else False
def once():
    bufs = [b"\\x01" * (512 * 1024) for _ in range(8)]
    del bufs
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    once()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    not (hasattr(os, "confstr") and os.confstr("CS_GNU_LIBC_VERSION")), reason="glibc only"
)


def _run(mode: str, **env: str) -> tuple[bool, int]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        env={**base, "PYTHONPATH": str(SRC), **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@glibc_only
def test_tuned_process_reuses_its_memory_for_block_sized_buffers() -> None:
    tuned, faults = _run("tune")
    assert tuned
    # 800 buffers of 128 pages each: fresh pages every time would be ~100,000 faults
    assert faults < 1000, faults


@glibc_only
def test_the_default_allocator_touches_fresh_pages_for_them() -> None:
    """What tune() is for: without it, the same loop faults in most buffers' pages again."""
    tuned, faults = _run("none")
    assert not tuned
    assert faults > 50_000, faults


@glibc_only
def test_operator_settings_are_left_alone() -> None:
    tuned, _ = _run("tune", MALLOC_TRIM_THRESHOLD_="1048576")
    assert not tuned
    tuned, _ = _run("tune", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")
    assert not tuned
