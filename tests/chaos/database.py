"""Where a chaos scenario's installation keeps its data."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.storage.postgres_db import new_schema_name, url_with_schema


def with_application_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("application_name", name)])))


class Database:
    """Where a scenario's installation keeps its data: a SQLite file, or a PostgreSQL schema
    of its own whose connections carry an ``application_name`` of their own."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "omnihook.db"
        self.schema = new_schema_name() if kind == "postgresql" else None
        self.application_name = f"omnihook-chaos-{secrets.token_hex(4)}"

    @property
    def url(self) -> str:
        if self.schema is None:
            return f"sqlite:///{self.path}"
        return with_application_name(url_with_schema(self.schema), self.application_name)
