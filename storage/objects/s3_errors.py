"""How S3 and botocore failures become this package's errors, without leaking request details."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError

from storage.errors import ObjectExists, StoreUnavailable

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def unavailable(bucket: str, operation: str, exc: Exception) -> StoreUnavailable:
    """Describe a failure by error code and status only.

    Server messages and botocore's text can echo request details (access key ids,
    signing strings, endpoint URLs), so none of it is copied into our message.
    """
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        detail = f"{error_code(exc) or 'error'} (HTTP {status})"
    else:
        detail = type(exc).__name__
    return StoreUnavailable(f"S3 {operation} on bucket {bucket!r} failed: {detail}")


def translate_write(bucket: str, key: str, operation: str, exc: ClientError) -> Exception:
    """Map a conditional write's refusal to ObjectExists; everything else is unavailability."""
    if error_code(exc) == "PreconditionFailed":
        return ObjectExists(key)
    # 409 ConditionalRequestConflict (a concurrent write to the same key) also lands
    # here: a retry will either succeed or find the key taken.
    return unavailable(bucket, operation, exc)


def version_of(response: Mapping[str, object]) -> str | None:
    """The version id S3 gave a new object; None where the bucket keeps no versions."""
    # "null" is S3's name for the one version of an object written while unversioned.
    version = response.get("VersionId")
    return version if isinstance(version, str) and version != "null" else None


def error_code(exc: ClientError) -> str:
    """S3's error code (``NoSuchKey``, ``PreconditionFailed``...), or empty."""
    return str(exc.response.get("Error", {}).get("Code", ""))
