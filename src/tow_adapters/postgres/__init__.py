"""PostgreSQL (with pgvector) adapters: the embedded server, engines, migrations and stores."""
