"""Keeping CPython's cyclic garbage collector off the objects that predate a catch-up.

A catch-up allocates hundreds of thousands of container objects a range (parsed logs, decoded
events, rows), so the collector's full collections run several times a catch-up, and each walks
every tracked object in the process, the imported libraries included: they were a third of the
indexer's CPU time. Freezing what exists when a catch-up starts (`gc.freeze`) leaves it out of
those walks; unfreezing at the end gives it back, so nothing is kept from the collector longer
than a catch-up. A process that froze objects itself (a pre-fork server may) is left as it is.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    with _lock:
        mine = gc.isenabled() and gc.get_freeze_count() == 0
        if mine:
            gc.freeze()
    try:
        yield
    finally:
        if mine:
            with _lock:
                gc.unfreeze()


def resident_mb(pid: int | str = "self", field: str = "VmHWM") -> float | None:
    """A process's resident memory in MB from /proc (None where there is no /proc): VmHWM, its
    peak since it started, or VmRSS, now.

    Not ru_maxrss: Linux carries a parent's peak over into a child it spawns (a 13 MB child of
    a 500 MB parent reports 513 MB), so only VmHWM is the process's own."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(field.encode() + b":"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None
