"""The review page: sign-in, sign-out and the HTML shells whose scripts call the API.

Pages are rendered on the server from autoescaped templates and carry no inline script;
each loads its own module from ``/static/``, which talks to ``/api/v1`` with the session
cookie and the CSRF token the page hands it in a ``data-`` attribute. Every page and
answer here is ``no-store``, framed by nobody, and under a strict Content Security Policy.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from pathlib import Path
from typing import Any, Final

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from retrieval.access import AuditSink
from retrieval.auth import Principal, TokenVerifier
from retrieval.errors import Unauthenticated
from retrieval.grants import REASON_LENGTH, REASON_LENGTH_RULE, REASON_WORDS, REASON_WORDS_RULE
from retrieval.policy import (
    may_edit_referrals,
    may_erase,
    may_handle_subject_access,
    may_manage_holds,
    may_read_audit,
    may_read_dead_letters,
    may_read_own_accesses,
    may_read_retention,
    may_search,
    may_triage,
    purposes_for,
)
from retrieval.sessions import WebSessions
from retrieval.web.oidc_sign_in import CALLBACK_PATH, OidcSignIn, SignInRefused
from storage import HOLD_KINDS, AuditRecord, SessionFacts

_HERE = Path(__file__).parent
SIGN_IN_COOKIE: Final = "callrec_sign_in"
# No inline script or style anywhere; media only from this origin (the grant's URL).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_STATIC: Final = {
    "app.css": "text/css",
    "common.js": "text/javascript",
    "search.js": "text/javascript",
    "recording.js": "text/javascript",
    "player.js": "text/javascript",
    "audit.js": "text/javascript",
    "retention.js": "text/javascript",
    "accesses.js": "text/javascript",
    "unlinked.js": "text/javascript",
    "subject_access.js": "text/javascript",
    "subject_access_case.js": "text/javascript",
}
_MAX_TOKEN = 8192
# Each kind of hold as the page offers it: the policy's name, read as words.
HOLD_LABELS: Final = tuple((kind, kind.replace("_", " ")) for kind in HOLD_KINDS)
# The API's rule for every reason (listening, holds, erasure), for the page's fields and
# the check its script makes before asking: one rule, written once, in retrieval.grants.
REASON_RULE: Final = {
    "shortest": REASON_LENGTH[0],
    "longest": REASON_LENGTH[1],
    "words": REASON_WORDS,
    "length_rule": REASON_LENGTH_RULE,
    "words_rule": REASON_WORDS_RULE,
}


class ReviewPages:
    """The page routes; ``auth_mode`` decides what the sign-in page offers."""

    def __init__(
        self,
        *,
        sessions: WebSessions,
        tokens: TokenVerifier,
        auth_mode: str,
        audit: AuditSink,
        oidc: OidcSignIn | None = None,
        phone_region: str = "GB",
    ) -> None:
        self._audit = audit
        self._phone_region = phone_region
        self._sessions = sessions
        self._tokens = tokens
        self._auth_mode = auth_mode
        self._oidc = oidc
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def add_routes(self, app: web.Application) -> None:
        """Mount the pages at ``/`` beside the API and operations routes."""
        app.router.add_get("/", self.search)
        shells: tuple[tuple[str, str, str | None, dict[str, Any]], ...] = (
            # One recording: its facts, listening, holds; what shows depends on the role.
            ("/recordings/{id}", "recording", "recording_id", {"hold_kinds": HOLD_LABELS}),
            ("/audit", "audit", None, {}),  # the audit trail (auditors and the DPO)
            ("/retention", "retention", None, {}),  # retention operators and auditors
            ("/accesses", "accesses", None, {}),  # who accessed a call handler's own calls
            # Calls without a referral, to link or mark as needing none (supervisors).
            ("/unlinked", "unlinked", None, {}),
            # Subject access requests, and one request's redactions and export (DPO).
            ("/subject-access", "subject_access", None, {"phone_region": self._phone_region}),
            ("/subject-access/{id}", "subject_access_case", "case_id", {}),
        )
        for path, name, id_name, context in shells:
            page = self._shell(f"{name}.html", f"{name}.js", id_name, reason=REASON_RULE, **context)
            app.router.add_get(path, page)
        app.router.add_get("/sign-in", self.sign_in_form)
        app.router.add_post("/sign-in", self.sign_in)
        app.router.add_post("/sign-out", self.sign_out)
        app.router.add_get("/sign-in/oidc", self.oidc_begin)
        app.router.add_get(CALLBACK_PATH, self.oidc_finish)
        app.router.add_get("/static/{name}", self.static)

    # -- pages -------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.StreamResponse:
        """Search, for the roles that look recordings up; others go to their own page."""
        found = await self._sessions.current(request)
        if found is None:
            return _to_sign_in()
        principal, facts = found
        if not may_search(principal):
            if may_read_audit(principal):
                return _redirect("/audit")
            if may_read_retention(principal):
                return _redirect("/retention")
            if may_read_own_accesses(principal):
                return _redirect("/accesses")
        return self._page("search.html", principal, facts, script="search.js")

    def _shell(self, template: str, script: str, id_name: str | None, **context: Any) -> Handler:
        """A page that is a shell for its script: signed in, or off to sign in. A page
        about one thing (``/recordings/{id}``) gets its id, checked, as ``id_name``."""

        async def page(request: web.Request) -> web.StreamResponse:
            found = await self._sessions.current(request)
            if found is None:
                return _to_sign_in()
            principal, facts = found
            named = dict(context)
            if id_name is not None:
                try:
                    named[id_name] = str(uuid.UUID(request.match_info["id"]))
                except ValueError:
                    raise web.HTTPNotFound(headers=PAGE_HEADERS) from None
            return self._page(template, principal, facts, script=script, **named)

        return page

    # -- signing in and out ------------------------------------------------------------

    async def sign_in_form(self, request: web.Request) -> web.StreamResponse:
        """The sign-in form, with a one-time value against cross-site sign-in (login CSRF)."""
        return self._sign_in_page(None, 200)

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """Exchange a dev token for a session; the token goes no further than this check."""
        if self._auth_mode != "dev":
            raise web.HTTPNotFound(headers=PAGE_HEADERS)
        form = await _small_form(request)
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        offered = str(form.get("nonce", ""))
        if not expected or not hmac.compare_digest(expected, offered):
            return self._sign_in_error("The sign-in form expired; please try again.", 403)
        token = str(form.get("token", "")).strip()
        if not token or len(token) > _MAX_TOKEN:
            return self._sign_in_error("Paste the token `callrec token issue` printed.", 422)
        try:
            principal = await self._tokens.verify(token)
        except Unauthenticated as refused:
            await self._refused(refused.detail)
            return self._sign_in_error("That token is not valid (or has expired).", 401)
        response = _redirect("/")
        await self._start(request, principal, response, "dev_token")
        response.del_cookie(SIGN_IN_COOKIE, path="/sign-in")
        return response

    async def oidc_begin(self, request: web.Request) -> web.StreamResponse:
        """Off to the identity provider, with state, nonce and a PKCE challenge."""
        if self._oidc is None:
            raise web.HTTPNotFound(headers=PAGE_HEADERS)
        response = self._oidc.begin(request)
        response.headers.update(PAGE_HEADERS)
        return response

    async def oidc_finish(self, request: web.Request) -> web.StreamResponse:
        """Back from the identity provider: verify everything, then start the session."""
        if self._oidc is None:
            raise web.HTTPNotFound(headers=PAGE_HEADERS)
        try:
            principal = await self._oidc.finish(request)
        except SignInRefused as refused:
            await self._refused(refused.message)
            response = self._sign_in_error(refused.message, refused.status)
            self._oidc.forget(response)
            return response
        # A page that moves on by itself rather than a redirect: the session cookie is
        # SameSite=Strict, and a navigation that began at the IdP would not carry it.
        response = self._render("signed_in.html", status=200)
        await self._start(request, principal, response, "oidc")
        self._oidc.forget(response)
        return response

    async def _start(
        self, request: web.Request, principal: Principal, response: web.Response, how: str
    ) -> None:
        # A session already on this browser ends: every sign-in gets a fresh id.
        await self._sessions.end(request, response)
        facts = await self._sessions.start(principal, response)
        await self._audit.record(
            AuditRecord(
                actor=principal.actor,
                action="session.signed_in",
                details={
                    "method": how,
                    "roles": sorted(principal.roles),
                    "expires_at": facts.expires_at.isoformat(),
                },
            )
        )

    async def _refused(self, why: str) -> None:
        await self._audit.record(
            AuditRecord(
                actor="anonymous",
                action="session.signed_in",
                outcome="deny",
                details={"reason": why[:200]},
            )
        )

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        """End the session (the form carries its CSRF token); back to the sign-in page."""
        found = await self._sessions.current(request)
        form = await _small_form(request)
        if found is not None and not hmac.compare_digest(
            str(form.get("csrf_token", "")), found[1].csrf_token
        ):
            return web.Response(status=403, text="missing CSRF token", headers=PAGE_HEADERS)
        response = _redirect("/sign-in")
        await self._sessions.end(request, response)
        if found is not None:
            await self._audit.record(AuditRecord(actor=found[0].actor, action="session.signed_out"))
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        """One of the page's own files; nothing else is reachable here."""
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.FileResponse(
            _HERE / "static" / name,
            headers={
                "Content-Type": _STATIC[name],
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    # -- rendering ---------------------------------------------------------------------

    def _page(
        self,
        template: str,
        principal: Principal,
        facts: SessionFacts,
        *,
        script: str,
        **context: Any,
    ) -> web.Response:
        return self._render(
            template,
            status=200,
            script=script,
            csrf_token=facts.csrf_token,
            who=principal.subject,
            actor=principal.actor,
            roles=sorted(principal.roles),
            can=_abilities(principal),
            purposes=sorted(purposes_for(principal)),
            **context,
        )

    def _sign_in_error(self, message: str, status: int) -> web.Response:
        return self._sign_in_page(message, status)

    def _sign_in_page(self, error: str | None, status: int) -> web.Response:
        """The form with a fresh one-time value in the page and its cookie.

        An error page carries a new form too, so the right token pasted after a wrong one
        signs in; the value that was just used is replaced, so none is good twice.
        """
        nonce = secrets.token_urlsafe(24)
        response = self._render(
            "sign_in.html",
            auth_mode=self._auth_mode,
            oidc=self._oidc is not None,
            nonce=nonce,
            error=error,
            status=status,
        )
        response.set_cookie(
            SIGN_IN_COOKIE, nonce, path="/sign-in", secure=True, httponly=True, samesite="Strict"
        )
        return response

    def _render(self, template: str, *, status: int, **context: Any) -> web.Response:
        body = self._templates.get_template(template).render(**context)
        return web.Response(
            text=body, status=status, content_type="text/html", headers=PAGE_HEADERS
        )


def _abilities(principal: Principal) -> dict[str, bool]:
    """What the page may offer; the API decides again on every request."""
    return {
        "search": may_search(principal),
        "listen": bool(purposes_for(principal)),
        "referrals": may_edit_referrals(principal),
        "holds": may_manage_holds(principal),
        "erase": may_erase(principal),
        "audit": may_read_audit(principal),
        "retention": may_read_retention(principal),
        "fetches": may_read_dead_letters(principal),
        "accesses": may_read_own_accesses(principal),
        "triage": may_triage(principal),
        "subject_access": may_handle_subject_access(principal),
    }


def _to_sign_in() -> web.StreamResponse:
    return _redirect("/sign-in")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={**PAGE_HEADERS, "Location": location})


async def _small_form(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > 2 * _MAX_TOKEN:
        raise web.HTTPRequestEntityTooLarge(
            max_size=2 * _MAX_TOKEN, actual_size=request.content_length
        )
    return dict(await request.post())
