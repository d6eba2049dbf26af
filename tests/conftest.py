"""Shared pytest fixtures (kept small and generic).

* ``procs``: a :class:`peers.procs.Procs` that owns every real-peer process the test starts;
  teardown stops them all (SIGTERM, then SIGKILL, bounded), and a failed test's report gets
  a "peer logs" section with the tail of every peer's log.
* Hypothesis runs without its default 200 ms per-example deadline and without the
  ``too_slow`` health check (both are wall-clock asserts: on a loaded 2-core CI machine one
  descheduled example fails them, reported as ``DeadlineExceeded``/``Flaky``). A test that
  sets ``deadline=`` itself (the parser fuzzing's generous bound) keeps it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from peers.procs import Procs

settings.register_profile("sipwire", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sipwire")

_PROCS_KEY = pytest.StashKey[Procs]()


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Procs]:
    """Peer-process manager for one test; logs under ``tmp_path/peers``."""
    manager = Procs(tmp_path / "peers")
    request.node.stash[_PROCS_KEY] = manager
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        manager = item.stash.get(_PROCS_KEY, None)
        if manager is not None and manager.processes:
            report.sections.append(("peer logs", manager.report()))
    if report.when == "teardown" and _PROCS_KEY in item.stash:
        # items live for the whole session: do not keep every peer's output with them
        del item.stash[_PROCS_KEY]
    return report
