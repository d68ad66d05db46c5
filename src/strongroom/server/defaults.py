"""Where the server listens unless told otherwise: loopback only."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600
