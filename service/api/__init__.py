"""The HTTP API: one module per resource; routes are declared in ``service.app``."""
