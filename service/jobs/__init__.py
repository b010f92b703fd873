"""Durable background jobs: their kinds and what the worker does for each."""
