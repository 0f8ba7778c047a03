"""Tiny models and a schema-shaped demo table, for tests and explicit demos only."""
