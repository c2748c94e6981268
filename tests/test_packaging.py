"""The package's metadata in the form current build tools expect, without warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"


def test_the_licence_is_an_spdx_expression_with_a_build_backend_that_reads_one() -> None:
    # A table ({text = ...}) is deprecated by setuptools, which reads the SPDX string
    # form (PEP 639) from version 77 on.
    config = tomllib.loads(PYPROJECT.read_text())
    assert config["project"]["license"] == "AGPL-3.0-or-later"
    (backend,) = [req for req in config["build-system"]["requires"] if "setuptools" in req]
    minimum = re.fullmatch(r"setuptools>=(\d+)", backend)
    assert minimum is not None
    assert int(minimum.group(1)) >= 77
