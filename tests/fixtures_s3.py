"""Pytest plugin running moto's S3 server once per test run; never imported by the service."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import boto3
import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_START_TIMEOUT = 30.0
_FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Anything that could send the suite's requests (and a developer's real credentials) to a
# real account or a different endpoint is removed for the run.
_REAL_ENVIRONMENT = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
)


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine, but fail in CI, where the S3 backend must be proven."""
    # Tests read the environment directly: the service's settings object has no say here.
    if os.environ.get("CI") == "true":  # noqa: TID251
        pytest.fail(f"S3 tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's server on a free local port with fake credentials; yield its URL."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in _FAKE_ENVIRONMENT.items():
            env.setenv(name, value)
        for name in _REAL_ENVIRONMENT:
            env.delenv(name, raising=False)
        empty = tmp_path_factory.mktemp("aws-config")
        env.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))

        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            _unavailable(f"moto's server mode is not importable: {exc}")

        # Werkzeug logs every request at INFO through its own stderr handler.
        werkzeug = logging.getLogger("werkzeug")
        previous_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        # start() waits without a timeout and never returns if binding fails, so it is
        # given its own thread and a deadline.
        starter = threading.Thread(target=server.start, daemon=True)
        starter.start()
        starter.join(_START_TIMEOUT)
        if starter.is_alive():
            werkzeug.setLevel(previous_level)
            _unavailable(f"moto's server did not start within {_START_TIMEOUT:.0f} s")
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        try:
            probe = boto3.client("s3", endpoint_url=endpoint)
            probe.list_buckets()
            probe.close()
        except Exception as exc:
            server.stop()
            werkzeug.setLevel(previous_level)
            _unavailable(f"moto's server at {endpoint} does not answer: {exc}")
        try:
            yield endpoint
        finally:
            server.stop()
            werkzeug.setLevel(previous_level)


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Iterator[S3Client]:
    """A raw client for arranging and inspecting what the store under test cannot show."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: S3Client) -> Iterator[str]:
    """A fresh bucket per test, so no test sees another's objects."""
    name = _bucket_name()
    s3_client.create_bucket(Bucket=name)
    yield name
    _destroy_bucket(s3_client, name)


@pytest.fixture
def versioned_s3_bucket(s3_client: S3Client) -> Iterator[str]:
    """A fresh bucket with versioning on, where a plain DELETE keeps old versions."""
    name = _bucket_name()
    s3_client.create_bucket(Bucket=name)
    s3_client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    _destroy_bucket(s3_client, name)


def _bucket_name() -> str:
    return f"callrec-test-{uuid.uuid4().hex[:20]}"


def _destroy_bucket(client: S3Client, bucket: str) -> None:
    """Empty and remove a bucket, so the shared server's memory does not grow all run."""
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(
            Bucket=bucket, Key=upload.get("Key", ""), UploadId=upload.get("UploadId", "")
        )
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            client.delete_object(
                Bucket=bucket, Key=entry.get("Key", ""), VersionId=entry.get("VersionId", "")
            )
    client.delete_bucket(Bucket=bucket)
