"""Fixtures for the SigSciClient suite: the simulator in-process and over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from client_harness import DEFAULT_CONFIG, Sim, SimFactory, assert_no_secret

from sigsci_iga.sim import SimConfig, create_app, serve_in_thread


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Build simulators: `make_sim("loopback", sites=9)`; servers stop at teardown.

    At teardown, no call record any client observer saw may carry a secret.
    """
    created: list[Sim] = []
    with ExitStack() as stack:

        def factory(mode: str = "inprocess", **config: Any) -> Sim:
            app = create_app(SimConfig(**{**DEFAULT_CONFIG, **config}))
            if mode == "inprocess":
                harness = Sim(mode, app, "http://sim")
            else:
                assert mode == "loopback"
                harness = Sim(mode, app, stack.enter_context(serve_in_thread(app)))
            created.append(harness)
            return harness

        yield factory
    for harness in created:
        for record in harness.records:
            assert_no_secret(repr(record))


@pytest.fixture(params=["inprocess", "loopback"])
def mode(request: pytest.FixtureRequest) -> str:
    """How the client reaches the simulator: an in-process transport or a real loopback server."""
    value: str = request.param
    return value


@pytest.fixture
def sim(make_sim: SimFactory, mode: str) -> Sim:
    """The default simulator, reached both in-process and over a loopback server."""
    return make_sim(mode)


@pytest.fixture
def local_sim(make_sim: SimFactory) -> Sim:
    """The default simulator, in-process only (for tests where the wire does not matter)."""
    return make_sim("inprocess")
