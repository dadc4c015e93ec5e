"""Option values shared by the command line and the modules that act on them, kept free
of heavy imports so that `lgnm-live --help` answers at once."""

from __future__ import annotations

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"  # --pub: realtime.publisher
