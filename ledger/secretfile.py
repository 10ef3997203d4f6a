"""How secrets are read from text and written to disk, the same way for every kind of key.

`parse_hex` takes hex with an optional ``0x`` and surrounding whitespace; `atomic_write` writes
through a 0600 temporary file, fsync and os.replace, so a crash never leaves a half-written key
and no other user can read it, even briefly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "parse_hex"]


def parse_hex(text: str) -> bytes:
    """Bytes from hex, ``0x`` optional; ValueError (naming no value) if it is not hex."""
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    return bytes.fromhex(text)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and os.replace.

    Readers see the old file or the new one, never a torn write; the fsyncs make the new
    content survive a crash once this returns. mkstemp creates the file 0600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the replace is still atomic
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
