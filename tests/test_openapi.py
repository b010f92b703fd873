"""The OpenAPI description names every route the app serves."""

from __future__ import annotations

import re

from starlette.routing import Route

from service.api.openapi import SPEC
from service.app import ROUTES

UNDOCUMENTED = {"/", "/openapi.json"}


def test_every_route_is_described() -> None:
    for route in ROUTES:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if path in UNDOCUMENTED:
            continue
        assert path in SPEC["paths"], f"{path} is missing from /openapi.json"
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert method.lower() in SPEC["paths"][path], f"{method} {path} is not described"
