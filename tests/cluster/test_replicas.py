"""Three `callrec serve` replicas that behave as one service.

Each replica is a real process with its own empty data directory; they share only what
production shares: one PostgreSQL database, one S3 bucket (recordings, and epoch keys
under a prefix), one KMS key, the push secret and the auth settings. Commands run as an
operator would run them, from a fourth empty data directory with the same settings.

The servers start once for the module and every test works on recordings of its own, so
the tests can run in any order; the last one checks the audit chain and every receipt.
The figures an operator asks about (cross-replica plays, duplicate downloads, drain
times) are test properties: `pytest tests/cluster --junitxml=cluster.xml` writes them.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import boto3
import pytest
from sqlalchemy import func, select

from config.services import Services, build_services
from config.settings import Settings
from recorder import TwilioSignature
from storage import RECORDINGS_PREFIX
from storage.db.models import AuditEvent, Recording
from tests.cli_support import CALLREC, clean_environment, invoke
from tests.fixtures_db import clean_postgres
from tests.provider_fakes import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serving
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.serve_support import Served, SlowPush, launch_serve, start_serve
from tests.service_support import free_port

# The module runs on one worker (make test hands out whole files): one set of replicas,
# and the trail's check comes last.
pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.long]

REPLICAS = 3
GRACE_S = 3.0
PERIOD = timedelta(days=90)
REASON = "weekly quality review of call handling"


@dataclass
class Cluster:
    """The replicas, the settings they share, and a place for operators' commands."""

    replicas: list[Served]
    shared: dict[str, str]
    workdir: Path
    twilio: FakeTwilio
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    everyone: list[Served] = field(default_factory=list)
    """Every process started, so none outlives the module (a stray replica would go on
    claiming fetch jobs and sweeping in the next module's database)."""

    def url(self, replica: int, path: str) -> str:
        return f"http://127.0.0.1:{self.replicas[replica].port}{path}"

    def environment(self, data_dir: Path) -> dict[str, str]:
        """A process's environment: the shared settings and a data directory of its own."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return clean_environment(CALLREC_DATA_DIR=str(data_dir), **self.shared)

    async def command(self, *args: str) -> tuple[int, str, str]:
        """`callrec *args` as an operator on another machine runs it: an empty data dir,
        the shared settings. In this process: the replicas are the processes under test."""
        data_dir = self.workdir / f"operator-{uuid.uuid4().hex[:8]}"
        data_dir.mkdir(parents=True)
        done = await asyncio.to_thread(invoke, *args, CALLREC_DATA_DIR=str(data_dir), **self.shared)
        return done.returncode, done.stdout, done.stderr

    async def process(self, *args: str) -> tuple[int, str, str]:
        """`callrec *args` as ``command`` runs it, as a process of its own: for commands
        that run at the same time as each other."""
        process = await asyncio.create_subprocess_exec(
            *CALLREC,
            *args,
            env=self.environment(self.workdir / f"operator-{uuid.uuid4().hex[:8]}"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def token(self, role: str, subject: str) -> str:
        """A dev token issued by `callrec token issue`, as the hub's admin would."""
        if (role, subject) not in self.tokens:
            code, out, err = await self.command(
                "token", "issue", "--subject", subject, "--role", role, "--team", "mash-children"
            )
            assert code == 0, err
            self.tokens[(role, subject)] = out.strip()
        return self.tokens[(role, subject)]

    def services(self) -> Services:
        """The shared state, for looking behind the API (closed by the caller)."""
        env = self.shared
        return build_services(
            Settings(
                data_dir=self.workdir / "inspector",
                database_url=env["CALLREC_DATABASE_URL"],
                store_url=env["CALLREC_STORE_URL"],
                epoch_key_store_url=env["CALLREC_EPOCH_KEY_STORE_URL"],
                kms_key_id=env["CALLREC_KMS_KEY_ID"],
            )
        )


async def push(
    session: aiohttp.ClientSession, url: str, recording_id: str, **fields: Any
) -> tuple[int, dict[str, Any]]:
    body = push_body(metadata(recording_id=recording_id, **fields), make_wav(2))
    async with session.post(url, data=body, headers=push_headers(body)) as answer:
        return answer.status, await answer.json()


@pytest.fixture(scope="module")
def kms_key_for_cluster(s3_endpoint: str) -> Iterator[str]:
    client = boto3.client("kms", endpoint_url=s3_endpoint)
    yield client.create_key(Description="callrec cluster KEK")["KeyMetadata"]["KeyId"]
    client.close()


@pytest.fixture(scope="module")
def cluster_bucket(s3_endpoint: str) -> Iterator[str]:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"callrec-cluster-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    client.close()


async def start_up_sweeps_done(cluster: Cluster, count: int) -> None:
    """Wait until ``count`` sweeps are on the trail (each replica sweeps as it starts)."""
    for _ in range(600):
        if len(await sweep_events_since(cluster, 0)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the replicas' start-up sweeps never finished")


async def start_replica(workdir: Path, name: str, shared: dict[str, str]) -> Served:
    """`callrec serve` on an empty data directory of its own, with the shared settings.

    Each replica is its own public URL here (no balancer in front), which is what the
    platforms sign their callbacks with.
    """
    port = free_port()
    settings: dict[str, Any] = {**shared, "CALLREC_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    return await start_serve(
        workdir / name, workdir / f"{name}.log", grace_s=GRACE_S, port=port, **settings
    )


@pytest.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database_url: str,
    s3_endpoint: str,
    kms_key_for_cluster: str,
    cluster_bucket: str,
) -> AsyncIterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    await clean_postgres(postgres_database_url)  # the module's database starts empty
    twilio = FakeTwilio()
    shared = {
        "CALLREC_DATABASE_URL": postgres_database_url,
        "CALLREC_STORE_URL": f"s3://{cluster_bucket}/recordings",
        "CALLREC_EPOCH_KEY_STORE_URL": f"s3://{cluster_bucket}/epoch-keys",
        "CALLREC_KMS_KEY_ID": kms_key_for_cluster,
        "CALLREC_PUSH_SECRETS": f"pbx={SECRET}",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "CALLREC_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "CALLREC_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        # Short, so a download outlasts several leases: only renewal keeps it one fetch.
        "CALLREC_FETCH_LEASE": "PT2S",
    }
    migrated = await asyncio.to_thread(
        invoke, "db", "upgrade", CALLREC_DATA_DIR=str(workdir / "migrate"), **shared
    )
    assert migrated.returncode == 0, migrated.stderr
    replicas: list[Served] = []
    everyone: list[Served] = []
    with pytest.MonkeyPatch.context() as env:
        # The test's own look behind the API reaches the same S3 and KMS.
        env.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        try:
            async with serving(twilio.app()) as twilio.url:
                shared["CALLREC_TWILIO_API_BASE"] = twilio.url
                for n in range(REPLICAS):
                    replicas.append(await start_replica(workdir, f"replica-{n}", shared))
                    everyone.append(replicas[-1])
                made = Cluster(replicas, shared, workdir, twilio, everyone=everyone)
                # Calls due soon pushed while a start-up sweep runs may be reaped half way.
                await start_up_sweeps_done(made, REPLICAS)
                yield made
        finally:
            for replica in everyone:
                await stop(replica)


def due_soon(**fields: Any) -> dict[str, Any]:
    """Fields of a call whose deadline is ten minutes away: inside every sweep's horizon."""
    started = datetime.now(UTC) - PERIOD + timedelta(minutes=10)
    return {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ended_at": (started + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **fields,
    }


async def test_one_recording_pushed_to_every_replica_at_once_is_stored_once(
    cluster: Cluster,
) -> None:
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(
                push(session, cluster.url(n, "/webhooks/push/pbx"), "same-call")
                for n in range(REPLICAS)
            )
        )
    assert {status for status, _ in answers} <= {200, 201}, answers
    assert len({body["id"] for _, body in answers}) == 1
    services = cluster.services()
    try:
        async with services.database.read() as session:
            rows = await session.scalar(
                select(func.count())
                .select_from(Recording)
                .where(Recording.source_recording_id == "same-call")
            )
    finally:
        await services.close()
    assert rows == 1


async def rendition_ready(
    session: aiohttp.ClientSession, url: str, bearer: dict[str, str], limit_s: float = 30.0
) -> None:
    """Wait until the recording's metadata says its playback copy is ready."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        async with session.get(url, headers=bearer) as answer:
            if (await answer.json())["playback"]["copy"] == "ready":
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the rendition was not ready within {limit_s} s")


async def test_a_grant_made_on_any_replica_plays_with_range_on_every_other(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    token = await cluster.token("supervisor", "sup-cluster")
    bearer = {"Authorization": f"Bearer {token}"}
    heard: dict[tuple[int, int], bytes] = {}
    async with aiohttp.ClientSession() as session:
        status, body = await push(session, cluster.url(0, "/webhooks/push/pbx"), "played-call")
        assert status == 201, body
        recording = body["id"]
        # Acknowledged before its rendition: whichever replica's worker makes it, every
        # replica then plays the same rendition.
        await rendition_ready(session, cluster.url(1, f"/api/v1/recordings/{recording}"), bearer)
        for issuer in range(REPLICAS):
            async with session.post(
                cluster.url(issuer, f"/api/v1/recordings/{recording}/grants"),
                json={"purpose": "quality_review", "reason": REASON},
                headers=bearer,
            ) as granted:
                assert granted.status == 201, await granted.text()
                path = "/" + (await granted.json())["audio_url"].split("/", 3)[3]
            for player in range(REPLICAS):
                if player == issuer:
                    continue
                async with session.get(
                    cluster.url(player, path), headers={**bearer, "Range": "bytes=44-143"}
                ) as answer:
                    assert answer.status == 206, (issuer, player, await answer.text())
                    assert answer.headers["Content-Range"].startswith("bytes 44-143/")
                    heard[(issuer, player)] = await answer.read()
    # Six plays, each on a replica other than the one that issued its grant: the same
    # hundred bytes of the playback rendition every time.
    record_property("cross_replica_plays", len(heard))
    assert len(heard) == REPLICAS * (REPLICAS - 1)
    assert len(set(heard.values())) == 1
    assert all(len(part) == 100 for part in heard.values())


async def test_a_page_session_signed_in_on_one_replica_is_honoured_by_the_others(
    cluster: Cluster,
) -> None:
    token = await cluster.token("supervisor", "sup-page")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(cluster.url(0, "/sign-in")) as form:
            nonce = re.search(r'name="nonce" value="([^"]+)"', await form.text())
            pending = form.headers.getall("Set-Cookie", [])
        assert nonce is not None
        cookies = "; ".join(
            f"{name}={morsel.value}"
            for header in pending
            for name, morsel in SimpleCookie(header).items()
        )
        # The form came from replica 0; the balancer sends its answer to replica 1.
        async with session.post(
            cluster.url(1, "/sign-in"),
            data={"nonce": nonce.group(1), "token": token},
            headers={"Cookie": cookies},
            allow_redirects=False,
        ) as signed:
            assert signed.status == 303, await signed.text()
            session_cookie = SimpleCookie(signed.headers["Set-Cookie"])["callrec_session"].value
        for n in range(REPLICAS):
            async with session.get(
                cluster.url(n, "/"),
                headers={"Cookie": f"callrec_session={session_cookie}"},
                allow_redirects=False,
            ) as page:
                assert page.status == 200, (n, page.status)
                assert "data-csrf" in await page.text()


async def sweep_events_since(cluster: Cluster, seq: int) -> list[dict[str, Any]]:
    services = cluster.services()
    try:
        async with services.database.read() as session:
            found = await session.execute(
                select(AuditEvent.details).where(
                    AuditEvent.action == "retention.sweep", AuditEvent.seq > seq
                )
            )
            return [details or {} for details in found.scalars()]
    finally:
        await services.close()


async def last_seq(cluster: Cluster) -> int:
    services = cluster.services()
    try:
        async with services.database.read() as session:
            return int(await session.scalar(select(func.max(AuditEvent.seq))) or 0)
    finally:
        await services.close()


async def test_sweeps_run_together_delete_each_due_recording_once_and_count_it_once(
    cluster: Cluster,
) -> None:
    due = 24
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(
                push(
                    session,
                    cluster.url(n % REPLICAS, "/webhooks/push/pbx"),
                    f"due-{n}",
                    **due_soon(),
                )
                for n in range(due)
            )
        )
    assert {status for status, _ in answers} == {201}
    pushed = {uuid.UUID(body["id"]) for _, body in answers}
    before = await last_seq(cluster)

    runs = await asyncio.gather(
        *(cluster.process("retention", "run", "--batch-size", "4") for _ in range(REPLICAS))
    )

    assert [code for code, _, _ in runs] == [0] * REPLICAS, runs
    reported = [
        uuid.UUID(line.split()[-1])
        for _, out, _ in runs
        for line in out.splitlines()
        if line.startswith(("deleted ", "finished interrupted deletion of "))
    ]
    assert sorted(reported) == sorted(pushed)  # each once, by whichever finished it
    events = await sweep_events_since(cluster, before)
    assert sum(int(e["deleted"]) + int(e["resumed"]) for e in events) == due
    services = cluster.services()
    try:
        async with services.database.read() as session:
            destroyed = (
                await session.execute(
                    select(AuditEvent.recording_id, func.count())
                    .where(AuditEvent.action == "recording.keys_destroyed")
                    .where(AuditEvent.recording_id.in_(pushed))
                    .group_by(AuditEvent.recording_id)
                )
            ).all()
    finally:
        await services.close()
    assert {recording for recording, _ in destroyed} == pushed
    assert {count for _, count in destroyed} == {1}


async def replace_replica(cluster: Cluster, n: int) -> None:
    """A new replica in place of replica ``n`` (stopped first if it still runs), on a
    new, empty data directory."""
    await stop(cluster.replicas[n])
    name = f"replica-{n}-{uuid.uuid4().hex[:8]}"
    cluster.replicas[n] = await start_replica(cluster.workdir, name, cluster.shared)
    cluster.everyone.append(cluster.replicas[n])


async def stop(replica: Served) -> None:
    """SIGTERM and wait, unless it has exited already."""
    if replica.process.returncode is None:
        replica.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(replica.process.wait(), timeout=GRACE_S * 4)


async def states_of(cluster: Cluster, source_id: str) -> list[str]:
    services = cluster.services()
    try:
        async with services.database.read() as session:
            found = await session.execute(
                select(Recording.state).where(Recording.source_recording_id == source_id)
            )
            return [str(state) for state in found.scalars()]
    finally:
        await services.close()


async def test_a_replica_killed_mid_capture_leaves_nothing_after_the_next_sweep(
    cluster: Cluster,
) -> None:
    victim = cluster.replicas[2]
    # Ten minutes of audio: long enough to catch the capture between its claim and its
    # commit, while its objects go to the store.
    slow = SlowPush(
        victim.port, "killed-call", pieces=4, pause_s=0.01, audio=make_wav(600), **due_soon()
    )
    sending = asyncio.create_task(slow.send())
    seen_pending = False
    for _ in range(1000):
        if "pending" in await states_of(cluster, "killed-call"):
            seen_pending = True
            break
        if sending.done():
            break
        await asyncio.sleep(0.01)
    victim.process.send_signal(signal.SIGKILL)
    await victim.process.wait()
    await asyncio.gather(sending, return_exceptions=True)
    assert seen_pending, "the capture was never caught half-way"

    code, _, err = await cluster.command("retention", "run")
    assert code == 0, err

    # Due within the sweep's horizon, the half-stored capture is gone, not kept for its
    # grace: no pending row, no personal data, no object left in the store.
    assert "pending" not in await states_of(cluster, "killed-call")
    services = cluster.services()
    try:
        async with services.database.read() as session:
            left = (
                (
                    await session.execute(
                        select(Recording).where(Recording.source_recording_id == "killed-call")
                    )
                )
                .scalars()
                .all()
            )
        keys = [key async for key in services.objects.iter_keys(RECORDINGS_PREFIX)]
    finally:
        await services.close()
    assert all(row.from_number is None and row.to_number is None for row in left)
    killed = {str(row.id) for row in left}
    assert not [key for key in keys if any(rid in key for rid in killed)]
    await replace_replica(cluster, 2)


async def test_sigterm_mid_upload_answers_201_or_503_and_the_others_serve_on(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    draining = cluster.replicas[1]
    slow = SlowPush(draining.port, "drained-call", pieces=10, pause_s=0.1)
    upload = asyncio.create_task(slow.send())
    await slow.headers_sent.wait()
    await asyncio.sleep(0.2)
    drain_s = await draining.terminate_and_time()
    answer = await upload
    record_property("drain_s_mid_upload", round(drain_s, 2))

    assert answer.status in (201, 503), answer.body
    assert drain_s < GRACE_S
    states = await states_of(cluster, "drained-call")
    assert states == (["stored"] if answer.status == 201 else [])
    # The sender retries a 503 elsewhere; another replica takes it.
    async with aiohttp.ClientSession() as session:
        status, _ = await push(session, cluster.url(0, "/webhooks/push/pbx"), "drained-call")
    assert status in (200, 201)
    assert await states_of(cluster, "drained-call") == ["stored"]
    await replace_replica(cluster, 1)


async def twilio_callback(
    session: aiohttp.ClientSession, url: str, fields: list[tuple[str, str]]
) -> int:
    """A recording-status callback as Twilio sends it: form fields, signed with the URL."""
    signature = TwilioSignature(AUTH_TOKEN).compute(url, fields)
    async with session.post(
        url,
        data=urlencode(fields).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    ) as answer:
        return answer.status


async def test_a_fetch_slower_than_its_lease_told_to_every_replica_is_done_once(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    sid = "RE" + "5" * 32
    cluster.twilio.recordings[sid] = make_wav(3)
    cluster.twilio.scripts[sid] = ["slow:7"]  # three and a half leases of two seconds
    fields = [
        ("AccountSid", ACCOUNT_SID),
        ("RecordingSid", sid),
        ("RecordingUrl", cluster.twilio.recording_url(sid)),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "3"),
    ]
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(
                twilio_callback(session, cluster.url(n, "/webhooks/twilio"), fields)
                for n in range(REPLICAS)
            )
        )
    assert answers == [200] * REPLICAS
    for _ in range(300):
        if sid in cluster.twilio.deleted:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # a lease more: a second download would have begun by now

    downloads = [seen for seen in cluster.twilio.seen if seen.method == "GET" and sid in seen.path]
    record_property("duplicate_downloads", len(downloads) - 1)
    assert len(downloads) == 1, downloads
    assert cluster.twilio.deleted == [sid]
    assert await states_of(cluster, sid) == ["stored"]
    services = cluster.services()
    try:
        async with services.database.read() as session:
            copies_deleted = await session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "provider.copy_deleted")
            )
    finally:
        await services.close()
    assert copies_deleted == 1


async def test_a_replica_stopped_mid_sweep_leaves_its_claimed_work_to_the_others(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    due = 40
    async with aiohttp.ClientSession() as session:
        answers = []
        for first in range(0, due, 16):
            answers += await asyncio.gather(
                *(
                    push(
                        session,
                        cluster.url(n % REPLICAS, "/webhooks/push/pbx"),
                        f"swept-{n}",
                        **due_soon(),
                    )
                    for n in range(first, min(first + 16, due))
                )
            )
    assert {status for status, _ in answers} == {201}
    pushed = {uuid.UUID(body["id"]) for _, body in answers}
    before = await last_seq(cluster)

    # A replica starting now sweeps at once: stopped as soon as its sweep has claimed.
    await stop(cluster.replicas[0])
    name = f"replica-0-{uuid.uuid4().hex[:8]}"
    port = free_port()
    stopping = await launch_serve(
        cluster.workdir / name,
        cluster.workdir / f"{name}.log",
        grace_s=GRACE_S,
        port=port,
        **{**cluster.shared, "CALLREC_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    cluster.everyone.append(stopping)
    claimed = False
    for _ in range(3000):
        if await count_in_state(cluster, pushed, "deleting"):
            claimed = True
            break
        await asyncio.sleep(0.005)
    assert claimed, "the replica's sweep was never seen with work claimed"
    drain_s = await stopping.terminate_and_time()
    record_property("drain_s_mid_sweep", round(drain_s, 2))
    assert stopping.process.returncode == 0
    assert drain_s < GRACE_S

    code, _, err = await cluster.command("retention", "run")
    assert code == 0, err
    assert await count_in_state(cluster, pushed, "deleted") == due
    events = await sweep_events_since(cluster, before)
    assert sum(int(e["deleted"]) + int(e["resumed"]) for e in events) == due
    await replace_replica(cluster, 0)


async def count_in_state(cluster: Cluster, ids: set[uuid.UUID], state: str) -> int:
    services = cluster.services()
    try:
        async with services.database.read() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(Recording)
                    .where(Recording.id.in_(ids), Recording.state == state)
                )
                or 0
            )
    finally:
        await services.close()


async def test_at_the_end_the_audit_chain_and_every_receipt_verify(cluster: Cluster) -> None:
    # Runs last in this module: everything above is on the trail it checks.
    code, out, err = await cluster.command("audit", "verify")
    assert code == 0, out + err
