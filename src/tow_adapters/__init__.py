"""Adapters: one module per technology and port (PostgreSQL, filesystem, OpenAI, Exa, ...)."""
