"""What every object-store backend must do alike, then what only one backend can show."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from storage.errors import ObjectExists, ObjectMissing, StoreUnavailable
from storage.objects.filesystem import FilesystemObjectStore
from storage.objects.s3 import S3ObjectStore
from storage.objects.store import ObjectStore, ObjectVersion

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
PART_SIZE = 5 * MIB
PREFIX = "vault"
KEY = "objects/ab/abcdef0123456789"
DATA = bytes(range(256)) * 4


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """Each backend in turn; S3 with S3's smallest part size so multipart is cheap to reach."""
    backend: ObjectStore
    if request.param == "filesystem":
        backend = FilesystemObjectStore(tmp_path / "store")
    else:
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket: str = request.getfixturevalue("s3_bucket")
        backend = S3ObjectStore.connect(bucket, PREFIX, endpoint_url=endpoint, part_size=PART_SIZE)
    yield backend
    await backend.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A file to put, beside (and so on the same filesystem as) the filesystem store."""
    return write(tmp_path / "incoming" / "recording.bin", DATA)


def write(path: Path, data: bytes) -> Path:
    """Write a world-readable file, so a private object proves the store made it private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)
    return path


async def all_keys(store: ObjectStore) -> list[str]:
    return [key async for key in store.iter_keys()]


# Behaviour shared by every backend.


async def test_a_listing_under_a_prefix_gives_only_the_keys_after_the_one_named(
    store: ObjectStore, source: Path
) -> None:
    names = [f"anchors/checkpoints/{n:04d}" for n in range(5)]
    for name in [*names, "recordings/ab/abc"]:
        await store.put_file(name, source)
    listed = [key async for key in store.iter_keys("anchors/checkpoints/", after=names[2])]
    assert sorted(listed) == names[3:]
    everything = [key async for key in store.iter_keys("anchors/")]
    assert sorted(everything) == names


async def test_a_stored_object_reads_back_whole_and_in_ranges(
    store: ObjectStore, source: Path
) -> None:
    await store.put_file(KEY, source)

    assert await store.read_range(KEY, 0, len(DATA)) == DATA
    assert await store.read_range(KEY, 0, 1) == DATA[:1]
    assert await store.read_range(KEY, 300, 700) == DATA[300:700]
    assert await store.read_range(KEY, len(DATA) - 1, len(DATA)) == DATA[-1:]
    assert await store.read_range(KEY, 10, 10) == b""


async def test_a_range_running_past_the_end_is_cut_short_at_the_end(
    store: ObjectStore, source: Path
) -> None:
    await store.put_file(KEY, source)

    assert await store.read_range(KEY, len(DATA) - 10, len(DATA) + 100) == DATA[-10:]
    assert await store.read_range(KEY, len(DATA), len(DATA) + 10) == b""
    assert await store.read_range(KEY, len(DATA) + 5, len(DATA) + 10) == b""


async def test_an_inverted_or_negative_range_is_refused(store: ObjectStore, source: Path) -> None:
    await store.put_file(KEY, source)

    with pytest.raises(ValueError, match="range"):
        await store.read_range(KEY, 10, 5)
    with pytest.raises(ValueError, match="range"):
        await store.read_range(KEY, -1, 5)


async def test_size_and_exists_describe_a_stored_object(store: ObjectStore, source: Path) -> None:
    assert not await store.exists(KEY)

    await store.put_file(KEY, source)

    assert await store.exists(KEY)
    assert await store.size(KEY) == len(DATA)


async def test_a_fingerprint_holds_while_the_object_is_only_read(
    store: ObjectStore, source: Path
) -> None:
    await store.put_file(KEY, source)
    taken = await store.fingerprint(KEY)

    await store.read_range(KEY, 0, 10)
    await store.set_tags(KEY, {"callrec-retention": "held"})

    assert await store.fingerprint(KEY) == taken
    with pytest.raises(ObjectMissing):
        await store.fingerprint("objects/ab/absent")


async def test_an_empty_file_is_stored_as_an_empty_object(
    store: ObjectStore, tmp_path: Path
) -> None:
    await store.put_file(KEY, write(tmp_path / "incoming" / "empty", b""))

    assert await store.size(KEY) == 0
    assert await store.read_range(KEY, 0, 10) == b""


async def test_putting_a_taken_key_raises_object_exists_and_keeps_the_original_bytes(
    store: ObjectStore, source: Path, tmp_path: Path
) -> None:
    await store.put_file(KEY, source)
    other = write(tmp_path / "incoming" / "other.bin", b"replacement")

    with pytest.raises(ObjectExists) as raised:
        await store.put_file(KEY, other)

    assert raised.value.key == KEY
    assert await store.read_range(KEY, 0, len(DATA) + 1) == DATA


async def test_an_absent_key_raises_object_missing_for_reads_and_size(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing) as read:
        await store.read_range(KEY, 0, 10)
    with pytest.raises(ObjectMissing):
        await store.read_range(KEY, 0, 0)
    with pytest.raises(ObjectMissing) as sized:
        await store.size(KEY)

    assert read.value.key == KEY
    assert sized.value.key == KEY


async def test_delete_removes_an_object_and_may_be_repeated(
    store: ObjectStore, source: Path
) -> None:
    await store.put_file(KEY, source)

    await store.delete(KEY)
    await store.delete(KEY)
    await store.delete("objects/cd/never-stored")

    assert not await store.exists(KEY)
    with pytest.raises(ObjectMissing):
        await store.read_range(KEY, 0, 1)


async def test_delete_many_removes_exactly_the_named_objects_and_may_be_repeated(
    store: ObjectStore, source: Path
) -> None:
    keys = [f"objects/{n % 3}/{n:04d}" for n in range(25)]
    versions = {key: await store.put_file(key, source) for key in keys}
    doomed = [ObjectVersion(key, versions[key]) for key in keys[:20]]

    await store.delete_many(doomed)
    await store.delete_many(doomed)  # a resumed sweep deletes again
    await store.delete_many([ObjectVersion("objects/9/never-stored")])
    await store.delete_many([])

    assert sorted(await all_keys(store)) == sorted(keys[20:])


async def test_iter_keys_lists_exactly_the_keys_that_were_put(
    store: ObjectStore, source: Path
) -> None:
    keys = {"objects/ab/ab01", "objects/ab/ab02", "objects/cd/cd01", "top-level.bin"}
    for key in keys:
        await store.put_file(key, source)

    assert sorted(await all_keys(store)) == sorted(keys)

    await store.delete("objects/ab/ab02")

    assert sorted(await all_keys(store)) == sorted(keys - {"objects/ab/ab02"})


async def test_an_object_larger_than_a_part_round_trips(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(11 * MIB + 123)
    path = write(tmp_path / "incoming" / "large.bin", data)

    await store.put_file(KEY, path)

    assert await store.size(KEY) == len(data)
    assert await store.read_range(KEY, 0, len(data)) == data
    boundary = PART_SIZE
    assert (
        await store.read_range(KEY, boundary - 7, boundary + 9) == data[boundary - 7 : boundary + 9]
    )
    assert await store.read_range(KEY, len(data) - 5, len(data) + 5) == data[-5:]


async def test_copy_out_gives_a_private_file_of_the_object_that_outlives_nothing(
    store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(9 * MIB + 17)  # more than one piece of a ranged copy
    await store.put_file(KEY, write(tmp_path / "incoming" / "large.bin", data))
    target = tmp_path / "incoming" / "copy.bin"

    assert await store.copy_out(KEY, target, len(data)) == len(data)

    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.unlink()
    assert await store.read_range(KEY, 0, len(data)) == data


async def test_copy_out_reports_an_object_that_is_not_the_expected_length(
    store: ObjectStore, source: Path, tmp_path: Path
) -> None:
    await store.put_file(KEY, source)

    longer = await store.copy_out(KEY, tmp_path / "short.bin", len(DATA) - 10)
    shorter = await store.copy_out(KEY, tmp_path / "long.bin", len(DATA) + 10)

    assert (longer, shorter) == (len(DATA), len(DATA))


async def test_copy_out_of_an_absent_key_raises_object_missing(
    store: ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(ObjectMissing):
        await store.copy_out(KEY, tmp_path / "none.bin", 10)
    assert not (tmp_path / "none.bin").exists()


@pytest.mark.parametrize(
    "key", ["../x", "/abs", "A B", "", "objects//x", "objects/.tmp-x", "objects/ab/"]
)
async def test_an_invalid_key_is_refused_with_value_error(
    store: ObjectStore, source: Path, key: str
) -> None:
    with pytest.raises(ValueError, match="key"):
        await store.put_file(key, source)
    with pytest.raises(ValueError, match="key"):
        await store.read_range(key, 0, 1)
    with pytest.raises(ValueError, match="key"):
        await store.size(key)
    with pytest.raises(ValueError, match="key"):
        await store.exists(key)
    with pytest.raises(ValueError, match="key"):
        await store.delete(key)


async def test_check_passes_on_a_healthy_store(store: ObjectStore) -> None:
    await store.check()

    assert await all_keys(store) == []


# Filesystem only.


def tree(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


def inode(path: Path) -> int:
    return path.stat().st_ino


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_filesystem_objects_and_directories_are_private_to_the_owner(
    tmp_path: Path, source: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)

    await store.put_file(KEY, source)

    assert mode(root) & 0o077 == 0
    assert mode(root / "objects") & 0o077 == 0
    assert mode(root / "objects" / "ab") & 0o077 == 0
    assert mode(root / KEY) == 0o600


async def test_filesystem_put_from_the_same_filesystem_links_and_leaves_no_temporaries(
    tmp_path: Path, source: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)

    await store.put_file(KEY, source)

    assert tree(root) == ["objects", "objects/ab", KEY]
    assert inode(root / KEY) == inode(source)


async def test_filesystem_copy_out_on_the_same_filesystem_links_instead_of_copying(
    tmp_path: Path, source: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    await store.put_file(KEY, source)
    target = tmp_path / "scratch.bin"

    await store.copy_out(KEY, target, len(DATA))

    assert inode(target) == inode(root / KEY)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on a different filesystem from tmp_path, where a hard link cannot reach."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to copy from")
    with tempfile.TemporaryDirectory(dir=shm) as directory:
        yield Path(directory)


async def test_filesystem_put_from_another_filesystem_copies_privately_and_leaves_no_temporaries(
    tmp_path: Path, other_filesystem: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    data = os.urandom(3 * MIB + 17)
    outside = write(other_filesystem / "recording.bin", data)

    await store.put_file(KEY, outside)

    assert tree(root) == ["objects", "objects/ab", KEY]
    assert (root / KEY).read_bytes() == data
    assert mode(root / KEY) == 0o600
    assert mode(outside) == 0o644


async def test_filesystem_copy_onto_a_taken_key_raises_and_leaves_no_temporaries(
    tmp_path: Path, source: Path, other_filesystem: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    await store.put_file(KEY, source)

    with pytest.raises(ObjectExists):
        await store.put_file(KEY, write(other_filesystem / "other.bin", b"replacement"))

    assert tree(root) == ["objects", "objects/ab", KEY]
    assert (root / KEY).read_bytes() == DATA


async def test_filesystem_concurrent_puts_of_one_key_store_exactly_one(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "store")
    first = write(tmp_path / "incoming" / "first", b"first")
    second = write(tmp_path / "incoming" / "second", b"second")

    results = await asyncio.gather(
        store.put_file(KEY, first), store.put_file(KEY, second), return_exceptions=True
    )

    assert sorted(type(result).__name__ for result in results) == ["NoneType", "ObjectExists"]
    winner = b"first" if results[0] is None else b"second"
    assert await store.read_range(KEY, 0, 100) == winner


async def test_filesystem_iter_keys_skips_temporaries_left_by_a_crash(
    tmp_path: Path, source: Path
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    await store.put_file(KEY, source)
    write(root / "objects" / "ab" / ".tmp-0123456789abcdef", b"partial")
    write(root / ".probe-0123456789abcdef", b"probe")

    assert await all_keys(store) == [KEY]


async def test_filesystem_check_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)

    await store.check()

    assert tree(root) == []


async def test_filesystem_check_fails_when_the_root_was_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    root.rmdir()

    with pytest.raises(StoreUnavailable, match="not writable"):
        await store.check()


async def test_filesystem_check_fails_when_the_root_is_no_longer_a_directory(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    store = FilesystemObjectStore(root)
    root.rmdir()
    write(root, b"not a directory")

    with pytest.raises(StoreUnavailable, match="not writable"):
        await store.check()


# S3 only.


async def test_a_filesystem_objects_fingerprint_changes_with_a_byte_rewritten_in_place(
    tmp_path: Path, source: Path
) -> None:
    store = FilesystemObjectStore(tmp_path / "store")
    await store.put_file(KEY, source)
    taken = await store.fingerprint(KEY)
    path = tmp_path / "store" / KEY
    before = path.stat()
    with path.open("r+b") as stored:
        stored.seek(5)
        stored.write(b"\xff")
    # Same size, same inode, modification time put back: only the change time tells.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert await store.fingerprint(KEY) != taken


@pytest.fixture
async def s3_store(s3_endpoint: str, s3_bucket: str) -> AsyncIterator[S3ObjectStore]:
    store = S3ObjectStore.connect(s3_bucket, PREFIX, endpoint_url=s3_endpoint, part_size=PART_SIZE)
    yield store
    await store.close()


@pytest.mark.s3
async def test_s3_keys_live_under_the_prefix_and_listing_ignores_other_objects(
    s3_store: S3ObjectStore, s3_client: S3Client, s3_bucket: str, source: Path
) -> None:
    await s3_store.put_file(KEY, source)
    s3_client.put_object(Bucket=s3_bucket, Key="elsewhere/objects/ab/x", Body=b"x")
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}-sibling/x", Body=b"x")

    head = s3_client.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/{KEY}")

    assert head["ContentLength"] == len(DATA)
    assert await all_keys(s3_store) == [KEY]


@pytest.mark.s3
async def test_s3_multipart_put_onto_a_taken_key_raises_and_leaves_no_upload_behind(
    s3_store: S3ObjectStore, s3_client: S3Client, s3_bucket: str, source: Path, tmp_path: Path
) -> None:
    await s3_store.put_file(KEY, source)
    large = write(tmp_path / "incoming" / "large.bin", os.urandom(PART_SIZE + 1))

    with pytest.raises(ObjectExists):
        await s3_store.put_file(KEY, large)

    assert await s3_store.read_range(KEY, 0, PART_SIZE) == DATA
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


@pytest.mark.s3
async def test_s3_delete_in_a_versioned_bucket_removes_every_version_and_marker(
    s3_endpoint: str, s3_client: S3Client, versioned_s3_bucket: str, source: Path
) -> None:
    bucket = versioned_s3_bucket
    name = f"{PREFIX}/{KEY}"
    sibling = f"{KEY}0"
    store = S3ObjectStore.connect(bucket, PREFIX, endpoint_url=s3_endpoint, part_size=PART_SIZE)
    await store.put_file(KEY, source)
    await store.put_file(sibling, source)
    s3_client.put_object(Bucket=bucket, Key=name, Body=b"second version")
    s3_client.delete_object(Bucket=bucket, Key=name)  # leaves a delete marker
    s3_client.put_object(Bucket=bucket, Key=name, Body=b"third version")
    before = s3_client.list_object_versions(Bucket=bucket, Prefix=name)
    assert len(before.get("Versions", [])) == 4  # three of KEY, one of the sibling

    await store.delete(KEY)
    await store.close()

    after = s3_client.list_object_versions(Bucket=bucket, Prefix=name)
    versions = [entry.get("Key") for entry in after.get("Versions", [])]
    markers = [entry.get("Key") for entry in after.get("DeleteMarkers", [])]
    assert versions == [f"{PREFIX}/{sibling}"]
    assert markers == []


@pytest.mark.s3
@pytest.mark.parametrize("size", [len(DATA), 11 * MIB], ids=["single", "multipart"])
async def test_s3_put_tags_the_object_and_returns_its_version_in_a_versioned_bucket(
    s3_endpoint: str,
    s3_client: S3Client,
    versioned_s3_bucket: str,
    tmp_path: Path,
    size: int,
) -> None:
    bucket = versioned_s3_bucket
    path = write(tmp_path / "incoming" / "tagged.bin", os.urandom(size))
    store = S3ObjectStore.connect(bucket, PREFIX, endpoint_url=s3_endpoint, part_size=PART_SIZE)
    version = await store.put_file(KEY, path, tags={"callrec-retention": "standard"})
    name = f"{PREFIX}/{KEY}"

    def tags() -> dict[str, str]:
        found = s3_client.get_object_tagging(Bucket=bucket, Key=name)["TagSet"]
        return {tag["Key"]: tag["Value"] for tag in found}

    listed = s3_client.list_object_versions(Bucket=bucket, Prefix=name)["Versions"]
    assert [entry.get("VersionId") for entry in listed] == [version]
    assert tags() == {"callrec-retention": "standard"}
    await store.set_tags(KEY, {"callrec-retention": "held"})
    assert tags() == {"callrec-retention": "held"}

    await store.delete_many([ObjectVersion(KEY, version)])
    await store.close()
    after = s3_client.list_object_versions(Bucket=bucket, Prefix=name)
    assert after.get("Versions", []) == []
    assert after.get("DeleteMarkers", []) == []


@pytest.mark.s3
async def test_s3_delete_many_without_a_known_version_still_removes_every_version(
    s3_endpoint: str, s3_client: S3Client, versioned_s3_bucket: str, source: Path
) -> None:
    bucket = versioned_s3_bucket
    name = f"{PREFIX}/{KEY}"
    store = S3ObjectStore.connect(bucket, PREFIX, endpoint_url=s3_endpoint, part_size=PART_SIZE)
    await store.put_file(KEY, source)
    s3_client.delete_object(Bucket=bucket, Key=name)  # a delete marker over the version
    s3_client.put_object(Bucket=bucket, Key=name, Body=b"second version")

    await store.delete_many([ObjectVersion(KEY)])
    await store.close()

    after = s3_client.list_object_versions(Bucket=bucket, Prefix=name)
    assert after.get("Versions", []) == []
    assert after.get("DeleteMarkers", []) == []


@pytest.mark.s3
async def test_s3_set_tags_on_a_missing_object_raises_object_missing(
    s3_endpoint: str, s3_bucket: str
) -> None:
    store = S3ObjectStore.connect(s3_bucket, PREFIX, endpoint_url=s3_endpoint)
    with pytest.raises(ObjectMissing):
        await store.set_tags("objects/zz/never", {"callrec-retention": "held"})
    await store.close()


@pytest.mark.s3
async def test_s3_check_fails_for_a_missing_bucket(s3_endpoint: str) -> None:
    store = S3ObjectStore.connect("callrec-test-no-such-bucket", endpoint_url=s3_endpoint)

    with pytest.raises(StoreUnavailable, match="404"):
        await store.check()
    await store.close()


@pytest.mark.s3
async def test_s3_check_fails_quickly_for_an_unreachable_endpoint(s3_endpoint: str) -> None:
    store = S3ObjectStore.connect(
        "callrec-test",
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=1,
        read_timeout=1,
        max_retries=0,
    )
    started = time.monotonic()

    with pytest.raises(StoreUnavailable, match="EndpointConnectionError"):
        await store.check()

    assert time.monotonic() - started < 5
    await store.close()


@pytest.mark.s3
async def test_s3_errors_name_no_credentials(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    access_key, secret_key = "AKIDSENTINEL0000", "secret-sentinel-do-not-print"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    missing = S3ObjectStore.connect("callrec-test-no-such-bucket", endpoint_url=s3_endpoint)
    unreachable = S3ObjectStore.connect(
        s3_bucket, endpoint_url="http://127.0.0.1:9", connect_timeout=1, max_retries=0
    )
    messages = []
    for store in (missing, unreachable):
        with pytest.raises(StoreUnavailable) as raised:
            await store.check()
        messages.append(str(raised.value))
        await store.close()

    assert all(access_key not in m and secret_key not in m for m in messages)
    assert all(m.startswith("S3 HeadBucket") for m in messages)


@pytest.mark.s3
async def test_s3_connect_takes_the_endpoint_from_the_standard_environment_variable(
    s3_endpoint: str, s3_bucket: str, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    store = S3ObjectStore.connect(s3_bucket)

    await store.put_file(KEY, source)

    assert await store.read_range(KEY, 0, 4) == DATA[:4]
    await store.close()


def test_s3_store_refuses_a_part_size_below_the_s3_minimum() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3ObjectStore.connect("callrec-test", endpoint_url="http://127.0.0.1:9", part_size=MIB)


@pytest.mark.s3
async def test_an_s3_objects_fingerprint_changes_when_it_is_overwritten_behind_the_store(
    s3_store: S3ObjectStore, s3_client: S3Client, s3_bucket: str, source: Path
) -> None:
    await s3_store.put_file(KEY, source)
    taken = await s3_store.fingerprint(KEY)
    altered = bytearray(DATA)
    altered[5] ^= 0xFF
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{KEY}", Body=bytes(altered))

    assert await s3_store.fingerprint(KEY) != taken
