"""A diff kept on disk in parts while it is computed, so a corp's diff is never held whole.

A full import of 500,000 users adds 5 million links; held as objects they cost more than a
gigabyte. The parts go to an unnamed temporary file (removed by the system even if the process
dies) as msgpack, and are read back one at a time to be applied, or joined for a plan.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import IO, Any

import msgspec

from sigsci_iga.domain.diff import Diff, LinkRef
from sigsci_iga.domain.model import AccountSnapshot

#: An added account as its fields in `AccountSnapshot` order, without sites (a diff's added
#: accounts carry none): far cheaper to write and read than its JSON form.
_Added = tuple[str, str, str, str, bool, datetime | None, dict[str, Any]]
_Encoded = tuple[dict[str, Any], list[_Added], list[LinkRef], list[LinkRef]]
_LENGTH = 8
_NO_SITES: frozenset[str] = frozenset()


class DiffSpool:
    """Parts of one diff, in the order they were added, with their total counts."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="sigsci-iga-diff-")  # noqa: SIM115
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_Encoded)
        self.parts = 0
        self.bytes = 0
        self._summary: dict[str, dict[str, int]] | None = None

    def clear(self) -> None:
        """Forget every part (a read that starts again)."""
        self._file.seek(0)
        self._file.truncate()
        self.parts = 0
        self.bytes = 0
        self._summary = None

    def add(self, part: Diff) -> None:
        if part.is_empty:
            return
        # Links go as arrays a typed decoder turns straight back into `LinkRef`s.
        rest = replace(part, accounts_added=(), links_added=(), links_removed=()).to_json()
        added = [
            (a.email, a.name, a.role, a.status, a.mfa_enabled, a.created, dict(a.extra))
            for a in part.accounts_added
        ]
        data = self._encoder.encode((rest, added, part.links_added, part.links_removed))
        self._file.seek(0, 2)
        self._file.write(len(data).to_bytes(_LENGTH, "little"))
        self._file.write(data)
        self.parts += 1
        self.bytes += len(data)
        summary = part.summary()
        if self._summary is None:
            self._summary = summary
        else:
            for kind, counts in summary.items():
                for action, n in counts.items():
                    self._summary[kind][action] += n

    def summary(self) -> dict[str, dict[str, int]]:
        """The counts of every part together (`Diff.summary()` of the joined diff)."""
        return self._summary or Diff().summary()

    def __iter__(self) -> Iterator[Diff]:
        """The parts, in order, one at a time."""
        self._file.flush()
        self._file.seek(0)
        while header := self._file.read(_LENGTH):
            data = self._file.read(int.from_bytes(header, "little"))
            rest, accounts, added, removed = self._decoder.decode(data)
            yield replace(
                Diff.from_json(rest),
                accounts_added=tuple(
                    AccountSnapshot(email, name, role, status, mfa, created, _NO_SITES, extra)
                    for email, name, role, status, mfa, created, extra in accounts
                ),
                links_added=tuple(added),
                links_removed=tuple(removed),
            )

    def close(self) -> None:
        self._file.close()
