"""Fixtures shared by the whole suite: real backends started once per session."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_s3", "tests.fixtures_browser"]
