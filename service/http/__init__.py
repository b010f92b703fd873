"""The HTTP server around the app, as ``omnihook serve`` runs it: uvicorn, hardened against slow
and hostile clients.

``limits`` holds the numbers (read timeouts, connection cap, lingering), ``protocol`` the
connection-level guards (the request head's deadline, the cap on open connections),
``request_guard`` the request-level ones (the body's deadlines, size caps, the lingering read
before an early answer) and ``server`` puts them together into uvicorn's configuration.
"""
