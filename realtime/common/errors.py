"""User-facing errors: one clear line naming the file or option, exit code 2."""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from realtime.common.text import one_line

EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable[..., int | None])


class UserError(Exception):
    """A mistake in the user's input (file, option, data): reported without a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose option mistakes are one `error: ...` line (naming
    the option, then where the usage is) and exit 2, as every other user mistake:
    argparse's own error printed the whole usage block first (18 lines for lgnm-live)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if "prog" not in kwargs and spec is not None and self.prog.endswith(".py"):
            self.prog = f"python -m {spec.name.removesuffix('.__main__')}"  # as it was run

    def error(self, message: str) -> Any:  # argparse declares NoReturn; it exits
        self.exit(EXIT_USER_ERROR, f"error: {one_line(message)}; see {self.prog} --help\n")


def text_arg(text: str) -> str:
    """argparse `type` of an option naming a file, folder or URL: an empty value (an unset
    shell variable in `--video "$CLIP"`) is refused with argparse's one `error:` line."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value (an unset shell variable?)")
    return text


def path_arg(text: str) -> Path:
    """argparse `type` of a path option, refusing an empty value (`text_arg`): Path('') is
    '.', so `--out ""` wrote a run's files into the current folder and `--replay ""`
    replayed all of it."""
    return Path(text_arg(text))


def output_dir(path: str | Path, option: str) -> Path:
    """Create the output folder `path` (and its parents) given by the user as `option`.

    Raises UserError naming the option and the path when it exists as a file, lies under
    a file, or cannot be created or written in (permissions, a read-only or full disk);
    returns it."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    try:
        # An existing folder the user cannot write in (another user's, a read-only mount)
        # passes mkdir; unprobed, the first output file failed with a traceback, after
        # the models had loaded or a whole video had run.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot write in the folder ({exc.strerror or exc})") from None
    return folder


def cli_entry(func: F) -> F:
    """Wrap a CLI `main` so that a UserError becomes `error: ...` on stderr and exit 2,
    and a Ctrl-C the command does not handle itself one `error: interrupted` line and
    exit 130 (the shell's code for SIGINT), not a traceback.

    Whatever the command already produced (events written, predictions flushed) is the
    command's own responsibility to flush in `finally` blocks before the error propagates.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            code = func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            return EXIT_USER_ERROR
        except BrokenPipeError:
            return 0
        except KeyboardInterrupt:
            print("error: interrupted (Ctrl-C); what was written before stays, nothing after", file=sys.stderr)
            return 130
        return 0 if code is None else code

    return wrapper  # type: ignore[return-value]
