"""Outgoing webhooks: Standard Webhooks v1 deliveries of our events to users' endpoints.

- :mod:`~service.webhooks.requests`: what may be asked of endpoints (422 with every problem);
- :mod:`~service.webhooks.routing`: which endpoints get an event (their filters, matched once);
- :mod:`~service.webhooks.urls`: where an endpoint may point (the SSRF rules at registration);
- :mod:`~service.webhooks.endpoints`: creating, changing, rotating, removing; retry by hand;
- :mod:`~service.webhooks.signing`: secrets, the body, the ``webhook-*`` headers;
- :mod:`~service.webhooks.attempt`: one signed POST within one deadline;
- :mod:`~service.webhooks.policy`: what a result means (retry, give up, disable);
- :mod:`~service.webhooks.gate`: per-endpoint concurrency, so no endpoint holds up the others;
- :mod:`~service.webhooks.sender`: one run of a ``delivery`` job;
- :mod:`~service.webhooks.views`, :mod:`~service.webhooks.metrics`: what people see.

Deliveries are created by the dispatch of their event (:mod:`service.dispatch.job`, one per
event and endpoint, chosen by :mod:`~service.webhooks.routing`); the address guard of every
attempt is :mod:`service.egress`.
"""
