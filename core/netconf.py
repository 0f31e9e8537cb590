"""Network settings shared by the server, its clients and the command line."""

DEFAULT_PORT = 8765
# Host names that mean this machine only.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# The server's token, for `motionclip serve` and its clients.
TOKEN_ENV = "MOTIONCLIP_TOKEN"
