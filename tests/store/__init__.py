"""Repository tests (SQLite file and PostgreSQL)."""
