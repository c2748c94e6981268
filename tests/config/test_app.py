"""Operations endpoints and the app's error shape: health, readiness, metrics, 404 and 405."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from tests.clock import FakeClock
from tests.service_support import keys_read_before_the_database_went, running_service


async def test_healthz_and_readyz_answer_when_all_is_well(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        health = await service.client.get("/healthz")
        ready = await service.client.get("/readyz")
        assert (health.status, await health.json()) == (200, {"status": "alive"})
        assert (ready.status, await ready.json()) == (200, {"status": "ready"})
        assert "\ncallrec_ready 1.0\n" in await (await service.client.get("/metrics")).text()


async def test_readyz_names_an_unreachable_database(tmp_path: Path) -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:9/callrec"
    async with running_service(
        tmp_path / "var", unreachable, parts=keys_read_before_the_database_went()
    ) as service:
        response = await service.client.get("/readyz")
        assert response.status == 503
        assert await response.json() == {"error": "not_ready", "detail": "unreachable: database"}
        # Alive is not ready: the process itself is fine.
        assert (await service.client.get("/healthz")).status == 200
        # Prometheus scrapes a replica the balancer has left out, and hears why it should.
        assert "\ncallrec_ready 0.0\n" in await (await service.client.get("/metrics")).text()


async def test_readyz_names_an_object_store_that_is_gone(tmp_path: Path, database_url: str) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        objects = tmp_path / "var" / "objects"
        objects.rmdir()
        objects.write_text("not a directory")
        # The scrape asks for itself, whether or not anything has asked /readyz.
        assert "\ncallrec_ready 0.0\n" in await (await service.client.get("/metrics")).text()
        response = await service.client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["detail"] == "unreachable: store"


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/no/such/page", 404, "not_found"),
        ("GET", "/webhooks/push/pbx", 405, "method_not_allowed"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
async def test_routing_errors_are_json_too(
    tmp_path: Path, database_url: str, method: str, path: str, status: int, error: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        response = await service.client.request(method, path)
        assert response.status == status
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == error
        assert response.headers["X-Request-Id"]


async def test_a_sane_request_id_is_kept_and_a_hostile_one_replaced(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        kept = await service.client.get("/healthz", headers={"X-Request-Id": "lb-1234abcd"})
        assert kept.headers["X-Request-Id"] == "lb-1234abcd"
        for hostile in ("has spaces and ; semicolons", "y" * 100, "short"):
            replaced = await service.client.get("/healthz", headers={"X-Request-Id": hostile})
            assert replaced.headers["X-Request-Id"] != hostile
            assert len(replaced.headers["X-Request-Id"]) == 32


async def test_metrics_count_requests_by_route_not_by_raw_path(
    tmp_path: Path, database_url: str
) -> None:
    async with running_service(tmp_path / "var", database_url) as service:
        for source in ("a", "b", "c"):
            await service.client.post(f"/webhooks/push/{source}", data=b"")
        response = await service.client.get("/metrics")
        text = await response.text()
        assert response.content_type == "text/plain"
        assert (
            'callrec_http_requests_total{method="POST",route="/webhooks/push/{source}",'
            'status="401"} 3.0'
        ) in text
        assert "/webhooks/push/a" not in text


def _sample(text: str, name: str) -> float:
    (value,) = [line.split(" ")[1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


async def test_metrics_say_when_the_key_generation_is_due_for_rotation(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    every = timedelta(days=30)
    async with running_service(
        tmp_path / "var", database_url, clock=clock, key_rotation_interval=every
    ) as service:
        name = "callrec_keys_rotation_due_timestamp_seconds"
        # No key made yet: nothing is due, and an alert comparing NaN never fires.
        assert math.isnan(_sample(await (await service.client.get("/metrics")).text(), name))
        first_key_made = clock.now
        await service.push_call("first", clock.now - timedelta(minutes=5))
        due = _sample(await (await service.client.get("/metrics")).text(), name)
        assert due == (first_key_made + every).timestamp()
