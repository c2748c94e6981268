"""How a command says a number of things: "1 recording", "2 recordings", "0 recordings"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, the noun plural unless the count is exactly one.

    ``plural`` is for nouns that do not just take an ``s``; in a phrase, the last word is
    the one made plural ("abandoned capture" -> "abandoned captures").
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural if plural is not None else noun + 's'}"
