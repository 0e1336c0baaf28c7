"""Port contract suites: each port's behaviour against its in-memory fake and its real adapter (the embedded
PostgreSQL and the app fixtures come from tests/postgres_fixtures.py)."""
