"""The S3 lifecycle backstop in deploy/ matches what the service writes, and S3 accepts it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from config.settings import MAX_RETENTION_PERIOD
from storage.objects.store import HELD_TAGS, RETENTION_TAG, UNHELD_TAGS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POLICY = Path(__file__).parents[2] / "deploy" / "s3-lifecycle.json"


def policy() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(POLICY.read_text())
    return loaded


def test_the_expiring_rule_matches_unheld_objects_only_and_waits_past_the_deadline() -> None:
    (expiring,) = [rule for rule in policy()["Rules"] if "Days" in rule.get("Expiration", {})]
    tag = expiring["Filter"]["Tag"]
    assert {tag["Key"]: tag["Value"]} == UNHELD_TAGS
    assert HELD_TAGS[RETENTION_TAG] != tag["Value"]
    # Objects are written after the call starts; the deadline is a period after the start.
    assert expiring["Expiration"]["Days"] == MAX_RETENTION_PERIOD.days + 1


@pytest.mark.s3
def test_s3_accepts_the_policy_as_written(s3_client: S3Client, versioned_s3_bucket: str) -> None:
    written = policy()
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=versioned_s3_bucket,
        LifecycleConfiguration=written,  # type: ignore[arg-type]
    )
    read_back = s3_client.get_bucket_lifecycle_configuration(Bucket=versioned_s3_bucket)
    assert [rule["ID"] for rule in read_back["Rules"]] == [rule["ID"] for rule in written["Rules"]]
    assert read_back["Rules"][0]["Expiration"]["Days"] == written["Rules"][0]["Expiration"]["Days"]
