"""Every outgoing request: stock httpx through a guarded transport (public extension points).

- :mod:`~service.egress.guard`: which URLs and addresses may be reached;
- :mod:`~service.egress.backend`: the network backend that checks the address it connects to;
- :mod:`~service.egress.stream`: the connections beneath it, on plain asyncio;
- :mod:`~service.egress.transport`: the httpx transport over a pool with that backend;
- :mod:`~service.egress.cookies`: a cookie jar that keeps nothing.
"""

from __future__ import annotations

from service.egress.backend import GuardedBackend
from service.egress.cookies import refusing_jar
from service.egress.guard import DestinationRefused, check_url, display_url, refusal_reason
from service.egress.transport import GuardedTransport

__all__ = [
    "DestinationRefused",
    "GuardedBackend",
    "GuardedTransport",
    "check_url",
    "display_url",
    "refusal_reason",
    "refusing_jar",
]
