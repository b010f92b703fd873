"""What the network streams of the guarded clients share (:mod:`~service.downloads.sockets`,
:mod:`~service.downloads.tls`): the read size, readiness, and errors in httpcore's terms.

httpcore asks its stream for 64 KiB at a time. For a video of hundreds of megabytes that is
thousands of trips through the event loop and the HTTP parser, and on a busy machine it halves
the throughput (``tests/benchmarks/bench_download.py``). The streams read up to
:data:`READ_BYTES` instead. It is safe because their only reader is h11 (HTTP/1.1; HTTP/2 is
not enabled on these clients), which accepts data in blocks of any size.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator

READ_BYTES = 1024 * 1024


def is_readable(sock: socket.socket | None) -> bool:
    """Readable without blocking (data or EOF): an idle pooled connection the server closed."""
    if sock is None or sock.fileno() < 0:
        return True
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


@contextlib.contextmanager
def mapped_errors(
    *,
    timeout: type[Exception],
    error: type[Exception],
    errors: tuple[type[BaseException], ...] = (OSError,),
) -> Iterator[None]:
    """Timeouts and ``errors`` raised as the httpcore exceptions httpx maps to its own."""
    try:
        yield
    except TimeoutError as exc:  # before OSError: it is one
        raise timeout(str(exc) or "timed out") from exc
    except errors as exc:
        raise error(str(exc) or type(exc).__name__) from exc
