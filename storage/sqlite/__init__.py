"""The SQLite storage backend."""
