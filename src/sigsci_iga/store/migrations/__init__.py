"""Alembic migrations of the repository, run programmatically by `sigsci_iga.store.db.upgrade`."""
