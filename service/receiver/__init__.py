"""The receiving side of the provider's notifications, as small pure-ish pieces.

``limits`` reads a body under a size cap, ``verify`` checks the callback token and the
Standard Webhooks signature, ``match`` tells whether a body is about the URL's task (or is the
Kling console's test probe). The endpoint that strings them together is
:mod:`service.api.callbacks`.
"""
