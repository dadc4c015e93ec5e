"""`lgnm-keygen DIR [--name NAME]`: write a CurveZMQ key pair for lgnm-live.

Writes DIR/NAME.key (public: copy it to the publisher's --curve-clients directory, or
give it to subscribers as --curve-server-key) and DIR/NAME.key_secret (secret: keep it
private; --curve-secret). Existing keys are never overwritten.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import zmq.auth

from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """(public, secret) key files of a new pair; UserError if they exist or name is bad."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise UserError(f"--name {name!r}: use letters, digits, '_', '-', '.'")
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise UserError(f"{path}: already exists (not overwriting a key)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, or where it may not be created (/proc, a read-only mount)
        raise UserError(f"{directory}: cannot create the folder ({exc.strerror or exc})") from None
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)  # a secret key readable by others is no secret
    return Path(public_file), Path(secret_file)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="lgnm-keygen", description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=path_arg)
    ap.add_argument("--name", default="lgnm", help="file name stem (default lgnm)")
    args = ap.parse_args(argv)
    public, secret = write_key_pair(args.directory, args.name)
    print(f"public key: {public}\nsecret key: {secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
