-- Readiness (Storage.ping) proves that a write commits by rewriting this one row: the table
-- never grows. The same table as the PostgreSQL migration 0003.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);
INSERT INTO health (id, checked_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
