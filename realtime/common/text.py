"""Short listings for one-line notices."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(names: Sequence[str], most: int = 5) -> str:
    """`a, b, c` or, past `most` names, the first `most` and `and N more`."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
