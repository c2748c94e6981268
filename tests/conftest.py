"""Fixtures shared by the whole suite: real backends started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service_support import close_shared_media_workers

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_s3", "tests.fixtures_browser"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked ``long`` go first, in their own order: ``make test`` hands whole files
    to its workers in collection order (``--no-loadscope-reorder``: by default xdist would
    order them by how many tests they hold, and a long file of few tests would come last),
    so a long file collected last keeps one worker busy while the others have finished
    (the suite's wall time is its longest tail)."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session", autouse=True)
def shared_media_workers() -> Iterator[None]:
    """The services tests start share media worker processes; stopped after the last test."""
    yield
    close_shared_media_workers()
