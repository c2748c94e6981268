"""The parts a retention test works on: built from settings, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.services import Services, build_services
from config.settings import Settings
from tests.clock import FakeClock


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    """The service's parts on each database, with a FakeClock the test moves."""
    built = build_services(
        Settings(data_dir=tmp_path / "var", database_url=database_url, single_node=True),
        clock=FakeClock(),
    )
    try:
        yield built
    finally:
        await built.close()
