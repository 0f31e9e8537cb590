"""Network defaults of the local server and its clients, in one place (standard library only).

`motionclip serve`, its command line and core/client.py read these. The Blender add-on cannot
import core/; it keeps its own copy of the URL and loopback names in blender_addon/client.py.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

# Host names that mean "this machine" in a URL or a Host header ("[::1]" as written in a URL).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

TOKEN_ENV = "MOTIONCLIP_TOKEN"  # the server's token, for `motionclip serve` and its clients

ALLOW_REMOTE_FLAG = "--allow-remote-without-token"


def is_loopback_name(host: str) -> bool:
    """True for a host name or address of this machine as written in a URL (127.x.x.x included)."""
    host = (host or "").strip().lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")
