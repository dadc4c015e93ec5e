"""Old path of the user-facing errors, kept for users' code: they live in
`realtime.common.errors` (the bottom layer). Nothing inside the project imports this
module (tests/test_layers.py)."""

from realtime.common.errors import EXIT_USER_ERROR, UserError, cli_entry

__all__ = ["EXIT_USER_ERROR", "UserError", "cli_entry"]
