"""How long and how much a client may take: the numbers the server's guards apply.

The defaults follow nginx's spirit at tighter values (``client_header_timeout``,
``client_body_timeout``, ``lingering_time``): a provider posts a few KB in well under a second,
an operator's submission at most 16 MiB, so a client slower than these is broken or hostile,
and each one it holds is a connection (a file descriptor) taken from everybody else.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

MIB = 1024 * 1024

# Descriptors kept back from the connection cap for what the process opens itself: the
# database, downloads, outgoing webhooks, the provider's API, log files.
_RESERVED_DESCRIPTORS = 256
_MAX_CONNECTIONS = 2048


def default_max_connections() -> int:
    """Open client connections allowed at once: 2048, or fewer if the descriptor limit is low."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(16, min(_MAX_CONNECTIONS, soft - _RESERVED_DESCRIPTORS))


@dataclass(frozen=True)
class ServerLimits:
    # A request head (request line and headers) must be whole this long after the connection
    # opened or after its first byte came (an idle keep-alive connection is uvicorn's to close).
    head_timeout: float = 10.0
    # A body must not pause longer than this between two reads, nor take longer than
    # ``body_timeout`` in all (16 MiB in 120 s is 140 KB/s: slower is not a working client).
    body_idle_timeout: float = 15.0
    body_timeout: float = 120.0
    # Before answering early (a 413, a 401...) while a body is still coming, up to this much of
    # it is read and thrown away, for at most this long, so that the client, still sending,
    # reads the answer instead of a reset (nginx's lingering close).
    linger_bytes: int = 4 * MIB
    linger_seconds: float = 2.0
    keep_alive: int = 5  # uvicorn's default: seconds an idle keep-alive connection stays open
    max_connections: int = field(default_factory=default_max_connections)
