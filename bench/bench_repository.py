"""Repositories for the benchmarks: a SQLite file, or a throwaway PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from sigsci_iga.store import Repository, open_repository

PG_HOST = os.environ.get("SIGSCI_IGA_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SIGSCI_IGA_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("SIGSCI_IGA_BENCH_PG_USER", "postgres")


@contextlib.contextmanager
def repository(kind: str, workdir: Path, prefix: str = "sigsci_iga_bench") -> Iterator[Repository]:
    """A new SQLite file in `workdir`, or a throwaway PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        repo = open_repository(f"sqlite:///{workdir / 'bench.db'}")
        try:
            yield repo
        finally:
            repo.close()
        return
    import psycopg  # noqa: PLC0415  # only the postgres scenarios need the driver

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        repo = open_repository(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        try:
            yield repo
        finally:
            repo.close()
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
