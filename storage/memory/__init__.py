"""The in-memory storage backend."""
