"""Fault rules the simulator injects in front of the API, and the controller that picks them."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    """What a matching rule does to a request."""

    THROTTLE_429 = "throttle_429"
    THROTTLE_400 = "throttle_400"
    ERROR_500 = "error_500"
    ERROR_524 = "error_524"
    DROP = "drop"
    TRUNCATE = "truncate"
    LATENCY = "latency"
    TIMEOUT = "timeout"
    EMPTY_USERS = "empty_users"
    LOGIN_REDIRECT = "login_redirect"


#: Kinds that only make sense once unless a count says otherwise.
_ONE_SHOT_BY_DEFAULT = frozenset({FaultKind.EMPTY_USERS})


@dataclass
class FaultRule:
    """One fault: which requests it hits, how often, and how many more times."""

    kind: FaultKind
    probability: float = 1.0
    #: Remaining uses; None means unlimited.
    count: int | None = None
    method: str | None = None
    #: A regular expression searched in the request path (e.g. "/users$").
    path: str | None = None
    latency_ms: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Normalise the kind and compile the path pattern once."""
        self.kind = FaultKind(self.kind)
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.count is None and self.kind in _ONE_SHOT_BY_DEFAULT:
            self.count = 1
        if self.count is not None and self.count < 0:
            raise ValueError("count must not be negative")
        if self.method is not None:
            self.method = self.method.upper()
        self._pattern = re.compile(self.path) if self.path else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """Build a rule from its JSON form; raises ValueError on bad input."""
        if not isinstance(data, dict) or "kind" not in data:
            raise ValueError("a fault rule needs a 'kind'")
        unknown = set(data) - {"kind", "probability", "count", "method", "path", "latency_ms"}
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        try:
            return cls(
                kind=FaultKind(data["kind"]),
                probability=float(data.get("probability", 1.0)),
                count=None if data.get("count") is None else int(data["count"]),
                method=data.get("method"),
                path=data.get("path"),
                latency_ms=int(data.get("latency_ms", 0)),
            )
        except (TypeError, re.error) as exc:
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The rule's JSON form."""
        return {
            "kind": self.kind.value,
            "probability": self.probability,
            "count": self.count,
            "method": self.method,
            "path": self.path,
            "latency_ms": self.latency_ms,
        }

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule's filters select this request (probability aside)."""
        if self.count == 0:
            return False
        if self.method is not None and self.method != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None


def parse_fault_spec(spec: str) -> FaultRule:
    """Read the CLI form `KIND[:PROBABILITY]`, e.g. `throttle_429:0.1`."""
    kind, _, probability = spec.partition(":")
    try:
        return FaultRule(kind=FaultKind(kind.strip()), probability=float(probability or 1.0))
    except ValueError as exc:
        kinds = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"bad fault {spec!r}: expected KIND[:PROB] with KIND in {kinds}") from exc


class FaultController:
    """The live rule list; thread-safe, with a seeded RNG so probabilistic runs repeat."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])
        self._rng = random.Random(seed)  # noqa: S311  # repeatable fault draws, not secrets
        self.fired: Counter[str] = Counter()

    @property
    def rules(self) -> list[FaultRule]:
        """A snapshot of the current rules."""
        with self._lock:
            return list(self._rules)

    def replace(self, rules: list[FaultRule]) -> None:
        """Swap the whole rule list."""
        with self._lock:
            self._rules = list(rules)

    def add(self, rule: FaultRule) -> None:
        """Append one rule."""
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def pick(self, method: str, path: str, route: str | None) -> list[FaultRule]:
        """Rules that fire for this request: every matching latency rule, then at most one other."""
        chosen: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.kind is FaultKind.EMPTY_USERS and route != "GET /corps/{corp}/users":
                    continue
                terminal = rule.kind is not FaultKind.LATENCY
                if terminal and any(r.kind is not FaultKind.LATENCY for r in chosen):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                self.fired[rule.kind.value] += 1
                chosen.append(rule)
            self._rules = [r for r in self._rules if r.count != 0]
        return chosen

    def snapshot(self) -> dict[str, Any]:
        """The JSON shape of GET /_sim/faults."""
        with self._lock:
            return {
                "faults": [r.to_dict() for r in self._rules],
                "fired": dict(sorted(self.fired.items())),
            }
