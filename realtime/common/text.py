"""Short listings for one-line notices, and file names as text every output can hold."""

from __future__ import annotations

import os
from collections.abc import Sequence


def text_name(name: str) -> str:
    """`name` with any byte that is not UTF-8 written as `\\xNN`.

    A file name from an old zip or a Windows share may be Latin-1 bytes; Python hands it
    over with surrogate escapes, which no UTF-8 file (predictions, scores, .eaf, logs) can
    hold. Valid names are returned unchanged."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def first_few(names: Sequence[str], most: int = 5) -> str:
    """`a, b, c` or, past `most` names, the first `most` and `and N more`."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
