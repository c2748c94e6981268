"""Deletion at the retention deadline: policy, sweeps, holds and early erasure.

Imports storage only; never recorder, retrieval or config.
"""

from retention.holds import HOLD_KINDS, Erasure, HoldDesk, HoldRefused
from retention.sweep import (
    RETENTION_REASON,
    Deletions,
    SweepReport,
    attest_if_due,
    retention_status,
    sweep_expired_recordings,
)

__all__ = [
    "HOLD_KINDS",
    "RETENTION_REASON",
    "Deletions",
    "Erasure",
    "HoldDesk",
    "HoldRefused",
    "SweepReport",
    "attest_if_due",
    "retention_status",
    "sweep_expired_recordings",
]
