"""Short listings for one-line notices, and file names as text every output can hold."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from types import MappingProxyType

# C0 and C1 control characters, DEL and the Unicode line and paragraph separators (which
# str.splitlines and some terminals break on) as escapes; a tab stays, it keeps a line one line
_CONTROLS = MappingProxyType({**{c: f"\\x{c:02x}" for c in (*range(32), *range(127, 160)) if c != 9},
                              0x2028: "\\u2028", 0x2029: "\\u2029", 10: "\\n", 13: "\\r"})


def text_name(name: str) -> str:
    """`name` in Unicode NFC, with any byte that is not UTF-8 written as `\\xNN`.

    A file name from an old zip or a Windows share may be Latin-1 bytes; Python hands it
    over with surrogate escapes, which no UTF-8 file (predictions, scores, .eaf, logs) can
    hold. NFC: macOS stores names decomposed (`e` + a combining accent) where a CSV typed
    by hand has the composed `é`; both read "café" and must be one video id
    (`intervals_csv` reads the video names of truth and predictions the same way)."""
    if not is_utf8(name):
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return unicodedata.normalize("NFC", name)


def is_utf8(text: str) -> bool:
    """False for text holding bytes that are not UTF-8 (the surrogate escapes Python
    gives a Latin-1 file name)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def one_line(text: str) -> str:
    """`text` with newlines and other control characters written as escapes (`\\n`,
    `\\x1b`): a message is one line, whatever a file name holds."""
    return text.translate(_CONTROLS)


def first_few(names: Sequence[str], most: int = 5) -> str:
    """`a, b, c` or, past `most` names, the first `most` and `and N more`."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
