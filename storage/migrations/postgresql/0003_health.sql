-- Readiness (Storage.ping) proves that a write commits by rewriting this one row: the table
-- never grows. The same table as the SQLite migration 0004.
CREATE TABLE health (
    id         integer PRIMARY KEY CHECK (id = 1),
    checked_at timestamptz NOT NULL
);
INSERT INTO health (id, checked_at) VALUES (1, now());
