"""The dispatch stage: each new event, written with one ``dispatch`` job (a transactional
outbox), becomes its handler runs and webhook deliveries in the worker (:mod:`.job`)."""
