"""Local fakes of the cloud platforms' media APIs, speaking their documented wire format.

``FakeTwilio`` serves ``GET /2010-04-01/Accounts/{sid}/Recordings/{rid}.wav|.mp3`` behind
HTTP Basic auth (AccountSid:AuthToken) and records ``DELETE .../{rid}.json``. Each
recording can be given a script of misbehaviours, one per request, before it is served:
``"500"``, ``"404"``, ``"429:<seconds>"``, ``"redirect:<url>"``, ``"stall"``, ``"html"``,
``"huge"``, ``"slow:<seconds>"`` (the whole recording, spread over that long). ``served``
lists each recording whose body was sent to the end. ``FakeStorage`` stands for the
signed storage a provider redirects to and records whether credentials reached it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    authorization: str | None


@dataclass
class FakeTwilio:
    """The media side of Twilio's REST API."""

    recordings: dict[str, bytes] = field(default_factory=dict)
    scripts: dict[str, list[str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    url: str = ""

    def recording_url(self, rid: str) -> str:
        """The ``RecordingUrl`` a callback carries: no extension."""
        return f"{self.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rid}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/2010-04-01/Accounts/{sid}/Recordings/{name}", self._get)
        app.router.add_delete("/2010-04-01/Accounts/{sid}/Recordings/{name}", self._delete)
        return app

    def _authorised(self, request: web.Request) -> bool:
        self.seen.append(Seen(request.method, request.path, request.headers.get("Authorization")))
        return request.headers.get("Authorization") == BASIC

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.Response(status=401, text="unauthorised")
        rid, _, extension = request.match_info["name"].partition(".")
        if rid not in self.recordings:
            return web.Response(status=404, text="no such recording")
        script = self.scripts.get(rid, [])
        step = script.pop(0) if script else "serve"
        if step in ("500", "404", "403"):
            return web.Response(status=int(step), text="failure")
        if step.startswith("429:"):
            return web.Response(status=429, headers={"Retry-After": step[4:]})
        if step.startswith("redirect:"):
            raise web.HTTPFound(step.removeprefix("redirect:"))
        if step == "html":
            return web.Response(text="<html>sign in</html>", content_type="text/html")
        if step == "stall":
            response = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
            await response.prepare(request)
            await response.write(self.recordings[rid][:100])
            await asyncio.sleep(30)
            return response
        if step == "huge":
            response = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
            await response.prepare(request)
            for _ in range(64):
                await response.write(bytes(64 * 1024))
            return response
        media = "audio/mpeg" if extension == "mp3" else "audio/x-wav"
        if step.startswith("slow:"):
            return await self._serve_slowly(request, rid, media, float(step[5:]))
        self.served.append(rid)
        return web.Response(body=self.recordings[rid], content_type=media)

    async def _serve_slowly(
        self, request: web.Request, rid: str, media: str, seconds: float
    ) -> web.StreamResponse:
        body, pieces = self.recordings[rid], 10
        response = web.StreamResponse(headers={"Content-Type": media})
        response.content_length = len(body)
        await response.prepare(request)
        step = -(-len(body) // pieces)
        for start in range(0, len(body), step):
            await asyncio.sleep(seconds / pieces)
            if request.transport is None or request.transport.is_closing():
                return response  # the client went away: not served
            await response.write(body[start : start + step])
        await response.write_eof()
        self.served.append(rid)
        return response

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.Response(status=401, text="unauthorised")
        rid, _, _ = request.match_info["name"].partition(".")
        if self.recordings.pop(rid, None) is None:
            return web.Response(status=404, text="no such recording")
        self.deleted.append(rid)
        return web.Response(status=204)


@dataclass
class FakeStorage:
    """Signed storage a provider redirects to: serves anything, remembers who asked how."""

    body: bytes = b""
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path, request.headers.get("Authorization")))
        return web.Response(body=self.body, content_type="audio/x-wav")


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


TELNYX_API_KEY = "KEY-fake-telnyx-0123456789"


@dataclass
class FakeTelnyx:
    """Telnyx's recordings API: ``DELETE /v2/recordings/{id}`` behind a Bearer API key."""

    deleted: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_delete("/v2/recordings/{rid}", self._delete)
        return app

    async def _delete(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path, request.headers.get("Authorization")))
        if request.headers.get("Authorization") != f"Bearer {TELNYX_API_KEY}":
            return web.json_response({"errors": [{"code": "10009"}]}, status=401)
        self.deleted.append(request.match_info["rid"])
        return web.json_response({"data": {"id": request.match_info["rid"]}})


@dataclass
class FakeVonage:
    """Vonage's media API: ``GET`` (and, where accepted, ``DELETE``) ``/v1/files/{uuid}``
    behind an application JWT (RS256)."""

    public_key_pem: str
    application_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    tokens: list[dict[str, object]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: int = 0
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/files/{uuid}", self._get)
        app.router.add_delete("/v1/files/{uuid}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.public_key_pem, algorithms=["RS256"])
        except jwt.PyJWTError:
            self.refused += 1
            return web.json_response({"title": "Unauthorized"}, status=401)
        if scheme != "Bearer" or claims.get("application_id") != self.application_id:
            self.refused += 1
            return web.json_response({"title": "Unauthorized"}, status=401)
        self.tokens.append(claims)
        body = self.files.get(request.match_info["uuid"])
        if body is None:
            return web.json_response({"title": "Not found"}, status=404)
        if request.method == "DELETE":
            del self.files[request.match_info["uuid"]]
            self.deleted.append(request.match_info["uuid"])
            return web.Response(status=204)
        return web.Response(body=body, content_type="audio/mpeg")
