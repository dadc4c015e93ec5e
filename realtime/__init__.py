"""lgnm-live: the streaming pipeline and its CLI."""
