"""Fixtures shared by the whole suite: real backends started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service_support import close_shared_media_workers

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_s3", "tests.fixtures_browser"]


@pytest.fixture(scope="session", autouse=True)
def shared_media_workers() -> Iterator[None]:
    """The services tests start share media worker processes; stopped after the last test."""
    yield
    close_shared_media_workers()
