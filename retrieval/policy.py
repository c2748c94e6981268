"""Need to know, in one place: which roles may do what, with which recordings, for what purpose.

Every API handler asks here; nothing else decides access.
"""

from __future__ import annotations

from typing import Final

from retrieval.auth import Principal

# Roles that may look recordings up at all. Retention operators, auditors and
# administrators work with counts, deadlines and the trail, never with recordings.
SEARCHERS: Final = frozenset({"supervisor", "safety_reviewer", "dpo"})
# Roles that see every team's recordings; a supervisor sees only their own teams'.
ALL_TEAMS: Final = frozenset({"safety_reviewer", "dpo"})
# The one purpose each role may state when asking to hear a recording.
PURPOSE_OF_ROLE: Final = {
    "supervisor": "quality_review",
    "safety_reviewer": "staff_safety",
    "dpo": "subject_access",
}


def may_search(principal: Principal) -> bool:
    """Whether the person may look recordings up at all (else 403)."""
    return bool(principal.roles & SEARCHERS)


def visible_teams(principal: Principal) -> frozenset[str] | None:
    """The teams whose recordings the person may see; None means every team."""
    if principal.roles & ALL_TEAMS:
        return None
    if "supervisor" in principal.roles:
        return principal.teams
    return frozenset()


def may_see(principal: Principal, team: str | None) -> bool:
    """Whether the person may see a recording of ``team`` (else it looks missing: 404)."""
    teams = visible_teams(principal)
    if teams is None:
        return may_search(principal)
    return team is not None and team in teams


def purposes_for(principal: Principal) -> frozenset[str]:
    """The purposes the person may state for a grant to hear audio."""
    return frozenset(PURPOSE_OF_ROLE[role] for role in principal.roles if role in PURPOSE_OF_ROLE)


# Roles that may link and unlink referrals: the people who review calls.
REFERRAL_EDITORS: Final = frozenset({"supervisor", "safety_reviewer"})
# Downloading the original file is separate from listening, and rarer.
DOWNLOADERS: Final = frozenset({"safety_reviewer", "dpo"})


def may_edit_referrals(principal: Principal) -> bool:
    """Whether the person may link or unlink referrals (on recordings they can see)."""
    return bool(principal.roles & REFERRAL_EDITORS)


def may_download_original(principal: Principal) -> bool:
    """Whether the person may download the original file, not just play it."""
    return bool(principal.roles & DOWNLOADERS)


# Who watches the deletion work: counts and times only, never recordings.
RETENTION_READERS: Final = frozenset({"retention_operator", "auditor"})


def may_read_retention(principal: Principal) -> bool:
    """Whether the person may see the retention status."""
    return bool(principal.roles & RETENTION_READERS)


# Who settles the provider fetches given up (with `callrec fetches retry|discard`): the
# people who answer for every announced recording being kept, then deleted, on time.
DEAD_LETTER_READERS: Final = frozenset({"retention_operator"})


def may_read_dead_letters(principal: Principal) -> bool:
    """Whether the person may see the provider fetches given up."""
    return bool(principal.roles & DEAD_LETTER_READERS)


# Who may keep a recording past its deadline, and release it again.
HOLD_MANAGERS: Final = frozenset({"safety_reviewer", "dpo"})
# Who may erase a recording before its deadline.
ERASERS: Final = frozenset({"dpo"})


def may_manage_holds(principal: Principal) -> bool:
    """Whether the person may place, renew and release holds (and read their reasons)."""
    return bool(principal.roles & HOLD_MANAGERS)


def may_erase(principal: Principal) -> bool:
    """Whether the person may erase a recording early."""
    return bool(principal.roles & ERASERS)


# Who answers a data subject's right of access: finds their calls by number, opens and
# closes the case, chooses redactions and exports.
SUBJECT_ACCESS_OFFICERS: Final = frozenset({"dpo"})


def may_handle_subject_access(principal: Principal) -> bool:
    """Whether the person may search by phone number and handle subject access requests."""
    return bool(principal.roles & SUBJECT_ACCESS_OFFICERS)


# Who reads the audit trail itself.
AUDIT_READERS: Final = frozenset({"auditor", "dpo"})


def may_read_audit(principal: Principal) -> bool:
    """Whether the person may read the audit trail."""
    return bool(principal.roles & AUDIT_READERS)


# Call handlers: they see who accessed the calls they took (matched on their subject),
# and nothing else; no role reads another person's list here, the trail serves auditors.
CALL_HANDLERS: Final = frozenset({"staff"})


def may_read_own_accesses(principal: Principal) -> bool:
    """Whether the person may see who accessed the calls they handled."""
    return bool(principal.roles & CALL_HANDLERS)


# Who triages the calls linked to no referral: a team's supervisors, and only their own
# teams' calls, whatever other role they hold (the list is a team's work, not a search).
TRIAGERS: Final = frozenset({"supervisor"})


def may_triage(principal: Principal) -> bool:
    """Whether the person triages calls without a referral at all (else 403)."""
    return bool(principal.roles & TRIAGERS)


def triage_teams(principal: Principal) -> frozenset[str]:
    """The teams whose calls without a referral the person lists, links and marks."""
    return principal.teams if may_triage(principal) else frozenset()
