"""Fixtures shared by the unit tests: a clock that moves only when told to, and a store on it.

``store`` needs a ``store_url`` fixture: test modules take test_store.py's (``store_url =
test_store.store_url``), so it runs on SQLite and on the session's real PostgreSQL
(tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from perfd.store import ResultStore

CLOCK_START = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(CLOCK_START)


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[ResultStore]:
    """A ResultStore on an empty database whose clock is ``clock``."""
    store = ResultStore.open(store_url, clock=clock)
    yield store
    store.close()
