"""The environment variables callrec reads, from its settings class itself: what the deploy
files may set, so a misspelt or removed setting in them fails a test instead of being
ignored by the service."""

from __future__ import annotations

import typing
from functools import cache

from pydantic import SecretStr

from config.settings import ENV_PREFIX, Settings

CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"
"""The TOML file's name: read beside the settings, not one of them."""


@cache
def setting_variables() -> frozenset[str]:
    """Every ``CALLREC_<FIELD>`` and ``CALLREC_<FIELD>_FILE``, and ``CALLREC_CONFIG``."""
    names = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    return frozenset(names | {f"{name}_FILE" for name in names} | {CONFIG_VARIABLE})


@cache
def secret_variables() -> frozenset[str]:
    """The settings whose values are secrets (typed SecretStr): set only through ``_FILE``."""
    return frozenset(
        f"{ENV_PREFIX}{name.upper()}"
        for name, field in Settings.model_fields.items()
        if _holds_secret(field.annotation)
    )


def _holds_secret(annotation: object) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret(argument) for argument in typing.get_args(annotation))


def unknown_settings(variables: typing.Iterable[str]) -> list[str]:
    """The ``CALLREC_*`` names among ``variables`` that callrec does not read."""
    return sorted(
        name
        for name in variables
        if name.startswith(ENV_PREFIX) and name not in setting_variables()
    )
