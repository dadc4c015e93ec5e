"""Whole-file writes that a reader never sees half done."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast


@contextmanager
def _replacing(path: str | Path, mode: str, **open_args: Any) -> Iterator[IO[Any]]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, mode, **open_args) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(path: str | Path, newline: str | None = None) -> Iterator[TextIO]:
    """Open a UTF-8 text file for writing in place of `path`: a temporary file beside it,
    renamed over `path` when the block ends without an exception (removed otherwise), so
    a reader sees the old file or the whole new one. Creates the parent folders.

    The file gets the mode any newly created file gets (0o666 less the umask, like
    predictions.csv), not tempfile.mkstemp's owner-only 0o600, which left truth.csv and
    the ELAN files unreadable to other users and web servers."""
    with _replacing(path, "x", newline=newline, encoding="utf-8") as fh:
        yield cast(TextIO, fh)


@contextmanager
def atomic_binary(path: str | Path) -> Iterator[BinaryIO]:
    """`atomic_text` for bytes (weights files: safetensors' own writer makes them 0o600)."""
    with _replacing(path, "xb") as fh:
        yield cast(BinaryIO, fh)
