"""Deletion at the retention deadline: policy, sweeps, holds and early erasure.

Imports storage only; never recorder, retrieval or config.
"""

from retention.sweep import Deletions, SweepReport, retention_status, sweep_expired_recordings

__all__ = ["Deletions", "SweepReport", "retention_status", "sweep_expired_recordings"]
