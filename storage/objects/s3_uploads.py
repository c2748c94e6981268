"""Create-only uploads to S3: one request for a small object, a multipart upload for a large one."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles
from botocore.exceptions import BotoCoreError, ClientError

from storage.objects.s3_errors import translate_write, unavailable, version_of
from storage.objects.store import ObjectLock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


class S3Uploads:
    """Writes whole objects into one bucket, each only if its key is still free.

    Both paths are create-only through ``If-None-Match: *``, which S3 evaluates
    atomically, so two writers racing for one key cannot both succeed.
    """

    def __init__(self, client: S3Client, bucket: str, part_size: int) -> None:
        self._client = client
        self._bucket = bucket
        self._part_size = part_size

    async def put_single(
        self, key: str, name: str, path: Path, tagging: str, lock: ObjectLock | None = None
    ) -> str | None:
        """Upload ``path`` in one PutObject; returns the new version id, if any."""
        async with aiofiles.open(path, "rb") as source:
            data = await source.read()
        try:
            response = await asyncio.to_thread(
                self._client.put_object,
                Bucket=self._bucket,
                Key=name,
                Body=data,
                IfNoneMatch="*",
                Tagging=tagging,
                **_lock_arguments(lock),
            )
        except ClientError as exc:
            raise translate_write(self._bucket, key, "PutObject", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "PutObject", exc) from exc
        return version_of(response)

    async def put_multipart(
        self, key: str, name: str, path: Path, tagging: str, lock: ObjectLock | None = None
    ) -> str | None:
        """Upload parts, then complete create-only; abort on any failure or cancellation.

        An unfinished upload is invisible but billed and keeps the bytes, so it is aborted
        here; a bucket lifecycle rule aborting stale uploads covers a crashed process.
        """
        try:
            created = await asyncio.to_thread(
                self._client.create_multipart_upload,
                Bucket=self._bucket,
                Key=name,
                Tagging=tagging,
                **_lock_arguments(lock),
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(self._bucket, "CreateMultipartUpload", exc) from exc
        upload_id = created["UploadId"]
        try:
            return await self._upload_parts(key, name, path, upload_id)
        except BaseException:
            await self._abort(name, upload_id)
            raise

    async def _upload_parts(self, key: str, name: str, path: Path, upload_id: str) -> str | None:
        parts: list[CompletedPartTypeDef] = []
        try:
            async with aiofiles.open(path, "rb") as source:
                while chunk := await source.read(self._part_size):
                    number = len(parts) + 1
                    uploaded = await asyncio.to_thread(
                        self._client.upload_part,
                        Bucket=self._bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": uploaded["ETag"], "PartNumber": number})
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(self._bucket, "UploadPart", exc) from exc
        try:
            completed = await asyncio.to_thread(
                self._client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            raise translate_write(self._bucket, key, "CompleteMultipartUpload", exc) from exc
        except BotoCoreError as exc:
            raise unavailable(self._bucket, "CompleteMultipartUpload", exc) from exc
        return version_of(completed)

    async def _abort(self, name: str, upload_id: str) -> None:
        # The error that made us abort is the one worth reporting; a lifecycle rule
        # removes the upload if this abort did not.
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(
                self._client.abort_multipart_upload,
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
            )


def _lock_arguments(lock: ObjectLock | None) -> dict[str, Any]:
    """PutObject's Object Lock parameters for ``lock``; none without one."""
    if lock is None:
        return {}
    return {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": lock.retain_until}
