"""The S3 object-store backend over boto3; not the parsing of store URLs, which config owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode

import aiofiles
import aiofiles.os
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.errors import ObjectMissing, StoreUnavailable
from storage.objects.s3_errors import NOT_FOUND, error_code, unavailable
from storage.objects.s3_uploads import S3Uploads
from storage.objects.store import (
    ObjectLock,
    ObjectVersion,
    copy_in_ranges,
    validate_key,
    validate_range,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef, ObjectIdentifierTypeDef

DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
"""S3 rejects multipart parts smaller than this, except the last one."""

MAX_PARTS = 10_000
"""S3's limit on parts in one multipart upload."""

_DELETE_BATCH = 1000  # the most keys one DeleteObjects request accepts
# What DeleteObjects reports for a version already gone: the deletion it asked for holds.
_ALREADY_GONE = frozenset({"NoSuchKey", "NoSuchVersion"})

_T = TypeVar("_T")


class S3ObjectStore:
    """Objects in one S3 bucket under an optional prefix.

    Create-only writes rely on S3's conditional writes (``If-None-Match: *``), which S3
    evaluates atomically, so two writers racing for one key cannot both succeed.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes, S3's minimum")
        prefix = prefix.strip("/")
        self._client = client
        self._bucket = bucket
        self._prefix = f"{validate_key(prefix)}/" if prefix else ""
        self._part_size = part_size
        self._uploads = S3Uploads(client, bucket, part_size)

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_retries: int = 3,
    ) -> S3ObjectStore:
        """Build a client; what is not given comes from the standard AWS environment.

        boto3 itself reads credentials, region and ``AWS_ENDPOINT_URL_S3`` (or
        ``AWS_ENDPOINT_URL``), so S3-compatible servers work without code here. Timeouts
        are bounded so a hung endpoint fails a request instead of stalling a recording.
        """
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_retries},
        )
        # A session per store: boto3's default session is shared module state and not
        # thread-safe, while the client made here is safe to use from worker threads.
        session = boto3.session.Session()
        client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return cls(client, bucket, prefix, part_size=part_size)

    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        tags: Mapping[str, str] | None = None,
        lock: ObjectLock | None = None,
    ) -> str | None:
        """Upload in one request below ``part_size``, else as a multipart upload.

        Both paths are create-only through ``If-None-Match: *``; the tags are set in the
        same request, so no object exists for a moment without them, and so is ``lock``
        (a bucket without Object Lock refuses it: a lock asked for is never dropped
        silently). Errors about
        ``path`` itself are the caller's and are raised unchanged.
        """
        name = self._name(key)
        tagging = urlencode(dict(tags or {}))
        size = (await aiofiles.os.stat(path)).st_size
        if size < self._part_size:
            return await self._uploads.put_single(key, name, path, tagging, lock)
        if -(-size // self._part_size) > MAX_PARTS:
            raise ValueError(f"{path} needs more than {MAX_PARTS} parts of {self._part_size}")
        return await self._uploads.put_multipart(key, name, path, tagging, lock)

    async def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """PutObjectTagging on the current version (the only one this service writes)."""
        name = self._name(key)
        tag_set = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        try:
            await asyncio.to_thread(
                self._client.put_object_tagging,
                Bucket=self._bucket,
                Key=name,
                Tagging={"TagSet": tag_set},  # type: ignore[typeddict-item]
            )
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                raise ObjectMissing(key) from exc
            raise unavailable(self._bucket, "PutObjectTagging", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "PutObjectTagging", exc) from exc

    async def copy_out(self, key: str, target: Path, length: int) -> int:
        """Ranged GETs into ``target``: a bucket shares nothing with local files."""
        return await copy_in_ranges(self, key, target, length)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """GET with an HTTP Range; S3 itself shortens a range that runs past the end."""
        validate_range(start, end)
        name = self._name(key)
        if start == end:
            # HTTP cannot express an empty range; a HEAD still says whether the object exists.
            await self.size(key)
            return b""
        try:
            response = await asyncio.to_thread(
                self._client.get_object,
                Bucket=self._bucket,
                Key=name,
                Range=f"bytes={start}-{end - 1}",
            )
            body = response["Body"]
            try:
                return await asyncio.to_thread(body.read)
            finally:
                body.close()
        except ClientError as exc:
            code = error_code(exc)
            if code in NOT_FOUND:
                raise ObjectMissing(key) from exc
            if code == "InvalidRange":
                # The range starts at or past the end of the object: nothing is there to read.
                return b""
            raise unavailable(self._bucket, "GetObject", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "GetObject", exc) from exc

    async def size(self, key: str) -> int:
        """HEAD the object (a missing bucket looks like a missing object: see ``_head``)."""
        head = await self._head(key)
        return int(head["ContentLength"])

    async def fingerprint(self, key: str) -> str:
        """The object's length, ETag and version id, from one HEAD.

        S3 never changes an object in place: any new bytes are a new PUT with a new ETag
        (and, in a versioned bucket, a new version id).
        """
        head = await self._head(key)
        return f"{head['ContentLength']}-{head.get('ETag', '')}-{head.get('VersionId', '')}"

    async def delete(self, key: str) -> None:
        """Delete the object; in a versioned bucket, every version and delete marker of it.

        A plain DELETE in a versioned bucket only adds a delete marker and keeps the bytes,
        which would not be a deletion at all. Versioning is asked each time rather than
        cached because it can be switched on while the service runs.
        """
        name = self._name(key)
        try:
            versioning = await asyncio.to_thread(
                self._client.get_bucket_versioning, Bucket=self._bucket
            )
            # "Suspended" buckets still hold the versions written while it was enabled.
            if versioning.get("Status") in ("Enabled", "Suspended"):
                await self._delete_versions(key, name)
            else:
                await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=name)
        except ClientError as exc:
            raise unavailable(self._bucket, "DeleteObject", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "DeleteObject", exc) from exc

    async def delete_many(self, objects: Sequence[ObjectVersion]) -> None:
        """DeleteObjects, up to 1,000 per request, naming each version where it is known.

        In a versioned bucket a version deleted by id is gone for good (no delete marker);
        an object whose version was not recorded falls back to listing its versions.
        """
        if not objects:
            return
        try:
            versioning = await asyncio.to_thread(
                self._client.get_bucket_versioning, Bucket=self._bucket
            )
            versioned = versioning.get("Status") in ("Enabled", "Suspended")
            targets: list[ObjectIdentifierTypeDef] = []
            for item in objects:
                name = self._name(item.key)
                if not versioned:
                    targets.append({"Key": name})
                elif item.version_id is not None:
                    targets.append({"Key": name, "VersionId": item.version_id})
                else:
                    await self._delete_versions(item.key, name)
            await self._delete_targets(targets)
        except ClientError as exc:
            raise unavailable(self._bucket, "DeleteObjects", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "DeleteObjects", exc) from exc

    async def exists(self, key: str) -> bool:
        """HEAD the object; see ``size`` for why a missing bucket reads as False."""
        try:
            await self.size(key)
        except ObjectMissing:
            return False
        return True

    async def iter_keys(self, prefix: str = "", *, after: str = "") -> AsyncIterator[str]:
        """List under the prefix one page per thread hop, yielding keys without the prefix."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(
            paginator.paginate(
                Bucket=self._bucket,
                Prefix=self._prefix + prefix,
                StartAfter=self._prefix + after if after else "",
            )
        )
        while True:
            try:
                page = await asyncio.to_thread(_next_or_none, pages)
            except (ClientError, BotoCoreError) as exc:
                raise unavailable(self._bucket, "ListObjectsV2", exc) from exc
            if page is None:
                return
            for entry in page.get("Contents", []):
                name = entry.get("Key", "")
                if name.startswith(self._prefix):
                    yield name[len(self._prefix) :]

    async def check(self) -> None:
        """HEAD the bucket: proves the endpoint answers, the bucket exists and we may use it."""
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self._bucket)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(self._bucket, "HeadBucket", exc) from exc

    async def close(self) -> None:
        """Close the client's connection pool."""
        await asyncio.to_thread(self._client.close)

    def _name(self, key: str) -> str:
        return self._prefix + validate_key(key)

    async def _head(self, key: str) -> HeadObjectOutputTypeDef:
        """HEAD the object.

        A HEAD response has no error body, so a missing bucket also looks like a missing
        object here; ``check`` is what tells a misconfigured bucket apart.
        """
        name = self._name(key)
        try:
            return await asyncio.to_thread(self._client.head_object, Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                raise ObjectMissing(key) from exc
            raise unavailable(self._bucket, "HeadObject", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "HeadObject", exc) from exc

    async def _delete_versions(self, key: str, name: str) -> None:
        paginator = self._client.get_paginator("list_object_versions")
        pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=name))
        targets: list[ObjectIdentifierTypeDef] = []
        while (page := await asyncio.to_thread(_next_or_none, pages)) is not None:
            # The listing is by prefix, so "a/b" also returns "a/bc": only exact matches go.
            for version in page.get("Versions", []):
                if version.get("Key") == name and "VersionId" in version:
                    targets.append({"Key": name, "VersionId": version["VersionId"]})
            for marker in page.get("DeleteMarkers", []):
                if marker.get("Key") == name and "VersionId" in marker:
                    targets.append({"Key": name, "VersionId": marker["VersionId"]})
        await self._delete_targets(targets)

    async def _delete_targets(self, targets: list[ObjectIdentifierTypeDef]) -> None:
        for first in range(0, len(targets), _DELETE_BATCH):
            result = await asyncio.to_thread(
                self._client.delete_objects,
                Bucket=self._bucket,
                Delete={"Objects": targets[first : first + _DELETE_BATCH], "Quiet": True},
            )
            errors = [e for e in result.get("Errors", []) if e.get("Code") not in _ALREADY_GONE]
            if errors:
                code = errors[0].get("Code", "error")
                raise StoreUnavailable(
                    f"S3 DeleteObjects on bucket {self._bucket!r} left {len(errors)} "
                    f"object version(s) undeleted: {code}"
                )


def _next_or_none(items: Iterator[_T]) -> _T | None:
    """Advance a paginator in a worker thread: each step may be a network request."""
    return next(items, None)
