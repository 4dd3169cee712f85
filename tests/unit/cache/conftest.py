"""Shared fixtures of the cache unit tests: a fake clock and a cache factory."""
from __future__ import annotations

import pytest

from cache import Cache


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_cache(tmp_path, clock):
    opened: list[Cache] = []

    def make(size: int = 8 << 20, path=None, **kw) -> Cache:
        kw.setdefault("clock", clock)
        c = Cache(str(path or tmp_path / "cache"), size, **kw)
        c.open()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture
def cache(make_cache) -> Cache:
    return make_cache()
