"""Deletion at the retention deadline: policy, sweeps, attestations, holds and early erasure.

Imports storage only; never recorder, retrieval or config.
"""

from retention.attestation import (
    ATTESTATION_INTERVAL,
    LISTED_HOLDS,
    AttestationRecords,
    attest,
    attest_if_due,
)
from retention.cycle import (
    CycleReport,
    FetchDetails,
    RetentionRecords,
    SpentEpochs,
    run_retention_cycle,
)
from retention.erasure import (
    ERASURE_APPROVALS_SETTING,
    SINGLE_DPO_RULE,
    Erasure,
    ErasureDesk,
    SelfApproval,
)
from retention.holds import HoldDesk, HoldRefused
from retention.report import RetentionCounts, TriageCounts, retention_status
from retention.subject_access import (
    CaseRefused,
    Criteria,
    HoldUpkeep,
    SubjectAccessOffice,
    extended_deadline,
    statutory_deadline,
)
from retention.sweep import (
    DEFAULT_BATCH,
    RETENTION_REASON,
    Deletions,
    SweepReport,
    sweep_expired_recordings,
)
from storage import HOLD_KINDS

__all__ = [
    "ATTESTATION_INTERVAL",
    "DEFAULT_BATCH",
    "ERASURE_APPROVALS_SETTING",
    "HOLD_KINDS",
    "LISTED_HOLDS",
    "RETENTION_REASON",
    "SINGLE_DPO_RULE",
    "AttestationRecords",
    "CaseRefused",
    "Criteria",
    "CycleReport",
    "Deletions",
    "Erasure",
    "ErasureDesk",
    "FetchDetails",
    "HoldDesk",
    "HoldRefused",
    "HoldUpkeep",
    "RetentionCounts",
    "RetentionRecords",
    "SelfApproval",
    "SpentEpochs",
    "SubjectAccessOffice",
    "SweepReport",
    "TriageCounts",
    "attest",
    "attest_if_due",
    "extended_deadline",
    "retention_status",
    "run_retention_cycle",
    "statutory_deadline",
    "sweep_expired_recordings",
]
