"""The roles and purposes of the contract; the one vocabulary every access decision uses."""

from __future__ import annotations

from typing import Final

ROLES: Final = (
    "supervisor",
    "safety_reviewer",
    "retention_operator",
    "auditor",
    "dpo",
    "admin",
    "staff",
)
PURPOSES: Final = ("quality_review", "staff_safety", "subject_access")
