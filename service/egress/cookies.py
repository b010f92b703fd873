"""No cookies for outgoing requests to URLs from outside (video CDNs, webhook endpoints).

Each request stands alone: a cookie one webhook endpoint sets must never travel back with a
later attempt, nor a CDN's with the next video.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy


def refusing_jar() -> CookieJar:
    """A cookie jar that keeps nothing (no domain is allowed to set a cookie)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
