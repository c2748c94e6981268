"""The ``callrec`` command line: help, serve, db upgrade, audit verify, tokens, fetches.

Commands run in this process (``invoke``) unless what is tested crosses the process
boundary: the installed script, ``serve`` (signals, its log on stderr, a start-up it
refuses) and a database the driver cannot reach, where the whole process must say one
line and exit 2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from config.cli import main
from config.services import build_services
from config.settings import Settings
from storage import (
    AuditQuery,
    AuditRecord,
    AuditTrail,
    Database,
    FetchQueue,
    ReceiptSigner,
    create_engine,
)
from storage.keys.signing import signing_key_from_seed
from tests.cli_support import CALLREC, clean_environment, invoke, run
from tests.fixtures_db import run_as_admin
from tests.push_support import SECRET, make_wav, metadata, push_body, push_headers
from tests.service_support import running_service, wait_until_healthy

OIDC = {
    "CALLREC_AUTH_MODE": "oidc",
    "CALLREC_OIDC_ISSUER": "https://login.example.test/hub",
    "CALLREC_OIDC_AUDIENCE": "api://callrec",
    "CALLREC_OIDC_JWKS_URL": "https://login.example.test/keys",
}


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "callrec"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "serve" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["audit"],
        ["audit", "verify"],
        ["token"],
        ["token", "issue"],
        ["retention"],
        ["retention", "run"],
        ["retention", "status"],
        ["fetches"],
        ["fetches", "retry"],
        ["fetches", "discard"],
        ["verify"],
        ["keys"],
        ["keys", "rotate"],
        ["keys", "rewrap"],
        ["keys", "status"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    # In-process: help is click's parsing, and the installed script is run above.
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage:")


def test_make_serve_takes_a_port_and_a_host() -> None:
    root = Path(__file__).resolve().parents[2]
    planned = subprocess.run(
        ["make", "-n", "serve", "PORT=8123", "HOST=0.0.0.0"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    # Under `make test` the parent make's directory lines come too; the command is one line.
    assert any(
        line.endswith("callrec serve --host 0.0.0.0 --port 8123")
        for line in planned.stdout.splitlines()
    ), planned.stdout


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        result = invoke("db", "upgrade", CALLREC_DATA_DIR=str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    assert (tmp_path / "callrec.db").exists()


def test_the_data_directory_and_the_database_are_readable_by_the_service_only(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / "fresh"
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(fresh)).returncode == 0
    # Made before files were private: the next command closes the directory.
    older = tmp_path / "older"
    older.mkdir(mode=0o755)
    older.chmod(0o755)
    (older / "callrec.db").touch(mode=0o644)
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(older)).returncode == 0

    for folder in (fresh, older):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    made = [path for path in fresh.rglob("*") if path.is_file()]
    assert fresh / "callrec.db" in made
    assert all(path.stat().st_mode & 0o077 == 0 for path in made), made


@pytest.mark.parametrize(
    ("command", "url", "says", "callrec"),
    [
        # A real process: nothing the driver leaves behind may add to the line as it exits.
        (
            "db upgrade",
            "postgresql://nobody@127.0.0.1:9/none",
            "database unavailable: ConnectionRefusedError at 127.0.0.1:9/none",
            run,
        ),
        (
            "fetches",
            "postgresql://postgres@127.0.0.1:5432/callrec_not_created",
            "the database does not exist at 127.0.0.1:5432/callrec_not_created",
            invoke,
        ),
        ("fetches", "mysql://someone@127.0.0.1/callrec", "callrec runs on PostgreSQL", invoke),
    ],
    ids=["unreachable", "missing", "unsupported"],
)
def test_a_database_that_cannot_be_used_is_one_line_naming_the_setting(
    tmp_path: Path,
    command: str,
    url: str,
    says: str,
    callrec: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = callrec(
        *command.split(),
        CALLREC_DATA_DIR=str(tmp_path),
        CALLREC_DATABASE_URL=url,
        CALLREC_SINGLE_NODE="true",
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert says in line
    assert "CALLREC_DATABASE_URL" in line


@pytest.mark.parametrize(
    "command", [["token", "issue", "--subject", "me", "--role", "supervisor"], ["fetches"]]
)
def test_a_command_pointed_at_no_data_says_where_it_looked_and_makes_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    elsewhere = tmp_path / "var"
    result = invoke(*command, CALLREC_DATA_DIR=str(elsewhere))
    assert result.returncode == 2
    assert result.stdout == ""  # no token that no server would accept
    (line,) = result.stderr.splitlines()
    assert f"no callrec data in {elsewhere}" in line
    assert "CALLREC_DATA_DIR" in line
    assert not elsewhere.exists()


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    name = f"callrec_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(run_as_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run_as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_a_database_without_callrec_tables_says_to_run_db_upgrade(
    tmp_path: Path, empty_postgres_database: str
) -> None:
    result = invoke(
        "fetches",
        CALLREC_DATA_DIR=str(tmp_path),
        CALLREC_DATABASE_URL=empty_postgres_database,
        CALLREC_SINGLE_NODE="true",
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "run `callrec db upgrade` first" in line


async def test_audit_verify_passes_then_names_the_event_that_was_changed(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    async with running_service(data_dir, database_url) as service:
        for n in range(3):
            body = push_body(metadata(recording_id=f"call-{n}"), make_wav(1))
            response = await service.client.post(
                "/webhooks/push/pbx", data=body, headers=push_headers(body)
            )
            assert response.status == 201
    settings = {
        "CALLREC_DATA_DIR": str(data_dir),
        "CALLREC_DATABASE_URL": database_url,
        "CALLREC_SINGLE_NODE": "true",
    }

    intact = invoke("audit", "verify", **settings)
    assert intact.returncode == 0, intact.stderr
    # The shared secrets and the receipt key made at the first start (four), three
    # captures, the week's epoch key being made, and the start-up sweep's own events
    # (sweep, attestation) once it has run.
    assert intact.stdout.strip() in {
        f"audit chain intact: {count} events verified, 0 receipts verified" for count in (8, 9, 10)
    }

    engine = create_engine(database_url)
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        else:
            await connection.execute(text("DROP TRIGGER audit_event_no_update"))
        await connection.execute(
            text("UPDATE audit_event SET actor = 'source:other' WHERE seq = 2")
        )
    await engine.dispose()

    broken = invoke("audit", "verify", **settings)
    assert broken.returncode == 1
    assert "audit chain broken at event 2" in broken.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [*CALLREC, "serve", "--port", str(port)],
        env=clean_environment(
            CALLREC_DATA_DIR=str(tmp_path / "var"), CALLREC_PUSH_SECRETS=f"pbx={SECRET}"
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_until_healthy(base, process):
        process.kill()
        pytest.fail(f"serve did not start: {process.communicate()[1]}")
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


def test_serve_runs_the_embedded_default_and_logs_json_without_phone_numbers(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    base, process = served
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as ready:  # noqa: S310
        assert json.load(ready) == {"status": "ready"}
    body = push_body(metadata(), make_wav(1))
    request = urllib.request.Request(  # noqa: S310
        f"{base}/webhooks/push/pbx", data=body, headers=push_headers(body), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 201
        request_id = response.headers["X-Request-Id"]
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as metrics:  # noqa: S310
        exposition = metrics.read().decode()
    pushed = (
        'callrec_http_requests_total{method="POST",route="/webhooks/push/{source}",status="201"}'
    )
    assert f"{pushed} 1.0" in exposition

    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert "listening on http://127.0.0.1:" in stderr
    assert "webhooks enabled: push from pbx at /webhooks/push/pbx" in stderr
    assert "webhooks not configured: twilio, telnyx, vonage" in stderr
    assert "callrec token issue --subject" in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(r.get("request_id") == request_id and r.get("status") == 201 for r in records), (
        stderr
    )
    assert "+441384000001" not in stderr
    assert "441384812345" not in stderr
    assert SECRET not in stderr


def test_the_documented_sender_pushes_a_recording(
    served: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, _ = served
    guide = (Path(__file__).parents[2] / "docs" / "push.md").read_text()
    sender = guide.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "push.py").write_text(sender)
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    (tmp_path / "call.wav").write_bytes(make_wav(2))
    result = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "push.py"),
            base,
            "pbx",
            str(tmp_path / "secret.txt"),
            str(tmp_path / "call.wav"),
            json.dumps(metadata()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('201 {"id": ')


def test_serve_refuses_a_keyring_others_can_read(tmp_path: Path) -> None:
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(tmp_path)).returncode == 0
    # db upgrade builds only the database; a command that uses the keys makes the keyring.
    assert invoke("keys", "status", CALLREC_DATA_DIR=str(tmp_path)).returncode == 0
    (tmp_path / "keyring").chmod(0o755)
    # A real process: a serve that failed to refuse would listen, and stop only on a signal.
    result = run("serve", "--port", "0", CALLREC_DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("callrec: ")
    assert str(tmp_path / "keyring") in result.stderr
    assert "Traceback" not in result.stderr


async def test_token_issue_prints_a_signed_jwt_for_the_person_role_and_teams(
    tmp_path: Path,
) -> None:
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(tmp_path)).returncode == 0
    result = invoke(
        "token",
        "issue",
        "--subject",
        "staff-0421",
        "--role",
        "supervisor",
        "--team",
        "mash-children",
        "--team",
        "mash-adults",
        "--ttl",
        "600",
        CALLREC_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    issued = result.stdout.strip()
    # Signed with the dev key kept in the database, which every replica shares.
    services = build_services(Settings(data_dir=tmp_path))
    try:
        key = (await services.load_shared_keys()).dev_token_key
    finally:
        await services.close()
    assert jwt.get_unverified_header(issued) == {"alg": "EdDSA", "kid": key.key_id, "typ": "JWT"}
    claims = jwt.decode(issued, key.public_pem, algorithms=["EdDSA"], audience="callrec")
    assert claims["sub"] == "staff-0421"
    assert claims["role"] == "supervisor"
    assert claims["teams"] == ["mash-children", "mash-adults"]
    assert claims["iss"] == "callrec-dev"
    assert claims["exp"] - claims["iat"] == 600
    assert not (tmp_path / "dev-signing-key.pem").exists()


@pytest.mark.parametrize(
    ("arguments", "settings", "message"),
    [
        (["--role", "superuser"], {}, "Invalid value for '--role'"),
        (["--role", "auditor", "--ttl", "0"], {}, "Invalid value for '--ttl'"),
        (["--role", "auditor"], OIDC, "only with CALLREC_AUTH_MODE=dev"),
    ],
)
def test_token_issue_refuses_what_it_must_not_sign(
    tmp_path: Path, arguments: list[str], settings: dict[str, str], message: str
) -> None:
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(tmp_path)).returncode == 0
    result = invoke(
        "token", "issue", "--subject", "x", *arguments, CALLREC_DATA_DIR=str(tmp_path), **settings
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


async def _dead_letter(data_dir: Path, *external_ids: str) -> None:
    database = Database(create_engine(Settings(data_dir=data_dir).resolved_database_url))
    clock = lambda: datetime.now(UTC)  # noqa: E731
    queue = FetchQueue(database=database, audit=AuditTrail(clock), clock=clock, max_attempts=1)
    try:
        for external_id in external_ids:
            await queue.enqueue(
                provider="twilio",
                external_id=external_id,
                url=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/{external_id}",
                details={},
                actor="source:twilio",
            )
            job = await queue.claim()
            assert job is not None
            await queue.retry(job, "the provider answered 500")
    finally:
        await database.dispose()


def test_fetches_fails_while_a_job_is_dead_until_each_is_retried_or_discarded(
    tmp_path: Path,
) -> None:
    env = {"CALLREC_DATA_DIR": str(tmp_path / "var")}
    assert invoke("db", "upgrade", **env).returncode == 0
    unknown = "7d5e0c1e-6b0a-4c36-9d0e-1b8f3c2a9e11"
    missing = invoke("fetches", "retry", unknown, **env)
    assert missing.returncode == 2
    assert missing.stderr == f"callrec: no dead-lettered fetch job {unknown}\n"
    asyncio.run(_dead_letter(tmp_path / "var", "RE-gone", "RE-late"))
    failing = invoke("fetches", **env)
    assert failing.returncode == 1
    assert "dead: 2" in failing.stdout
    letters = {
        letter["id"]: letter
        for letter in map(json.loads, failing.stdout.splitlines()[5:])  # after the counts
    }
    assert letters.keys() == {"RE-gone", "RE-late"}
    assert letters["RE-gone"]["attempts"] == 1
    assert "500" in letters["RE-gone"]["error"]

    reason = "the provider confirmed this call was never recorded"
    discarded = invoke("fetches", "discard", letters["RE-gone"]["job"], "--reason", reason, **env)
    assert discarded.returncode == 0, discarded.stderr
    retried = invoke("fetches", "retry", "--all", **env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == "1 job queued again\n"
    settled = invoke("fetches", **env)
    assert settled.returncode == 0, settled.stderr
    assert settled.stdout.splitlines() == [
        "queued: 1",
        "running: 0",
        "done: 0",
        "dead: 0",
        "discarded: 1",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["retry"], "give one job ID or --all"),
        (["retry", "--all", "7d5e0c1e-6b0a-4c36-9d0e-1b8f3c2a9e11"], "give one job ID or --all"),
        (["retry", "RE-dead"], "is not a job id"),
        (["discard", "7d5e0c1e-6b0a-4c36-9d0e-1b8f3c2a9e11"], "--reason: a reason is required"),
        (["discard", "7d5e0c1e-6b0a-4c36-9d0e-1b8f3c2a9e11", "--reason", "test"], "--reason:"),
    ],
)
def test_fetches_retry_and_discard_refuse_bad_input_in_one_line(
    arguments: list[str], message: str
) -> None:
    # In-process: each is refused before any setting is read or anything is opened.
    result = CliRunner().invoke(main, ["fetches", *arguments])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


def test_verify_exits_non_zero_while_the_store_holds_what_it_should_not(tmp_path: Path) -> None:
    env = {"CALLREC_DATA_DIR": str(tmp_path / "var")}
    assert invoke("db", "upgrade", **env).returncode == 0
    clean = invoke("verify", **env)
    assert clean.returncode == 0, clean.stderr
    assert "objects: 0, bytes: 0, problems: 0" in clean.stdout
    stray = tmp_path / "var" / "objects" / "recordings" / "ab" / ("ab" * 16)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not ours")
    dirty = invoke("verify", **env)
    assert dirty.returncode == 1
    (finding,) = [json.loads(line) for line in dirty.stdout.splitlines() if line.startswith("{")]
    assert finding == {
        "problem": "orphaned",
        "object_key": f"recordings/ab/{'ab' * 16}",
        "recording_id": None,
    }


async def test_audit_verify_names_the_first_deletion_receipt_that_does_not_verify(
    tmp_path: Path, sqlite_url: str
) -> None:
    data_dir = tmp_path / "var"
    # One DPO erases at once: the receipt is the subject here, not the approval.
    async with running_service(data_dir, sqlite_url, erasure_approvals=1) as service:
        recording = await service.push_call("call-1", datetime.now(UTC))
        erased = await service.client.delete(
            f"/api/v1/recordings/{recording}",
            json={"reason": "subject access request SAR-2026-118 from the caller"},
            headers={"Authorization": f"Bearer {service.token('dpo')}"},
        )
        assert erased.status == 200, await erased.text()
        (receipt,) = await service.services.audit_log.events(AuditQuery(action="recording.deleted"))
        services = service.services
        # Appended through the trail, so the chain holds: only the signatures can tell.
        stranger = ReceiptSigner(signing_key_from_seed(bytes(32)))
        async with services.database.transaction() as session:
            altered = await services.audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="recording.deleted",
                    details={**(receipt.details or {}), "reason": "retention"},
                ),
            )
            await services.audit.append(
                session,
                AuditRecord(
                    actor="retention",
                    action="recording.deleted",
                    details=stranger.sign({"recording_id": str(recording)}),
                ),
            )
    checked = invoke(
        "audit", "verify", CALLREC_DATA_DIR=str(data_dir), CALLREC_DATABASE_URL=sqlite_url
    )
    assert checked.returncode == 1
    # After the progress lines (stderr is no terminal here), one line naming the first.
    assert checked.stderr.strip().splitlines()[-1] == (
        f"deletion receipt at event {altered.seq} is bad: the signature by key "
        f"{services.receipts.key_id} does not verify"
    )


def test_a_command_run_in_this_process_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    # What the commands above run through: a command sets the umask and the logging for
    # its whole process, which the tests after it in this one must not inherit.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    umask = os.umask(0o022)
    os.umask(umask)
    assert invoke("db", "upgrade", CALLREC_DATA_DIR=str(tmp_path)).returncode == 0
    assert (tmp_path / "callrec.db").stat().st_mode & 0o077 == 0  # the command's umask
    assert os.umask(umask) == umask
    assert (root.handlers, root.level) == (handlers, level)
