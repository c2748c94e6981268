"""``callrec serve``: run the service (webhooks, API, web page and background jobs)."""

from __future__ import annotations

import logging
import os
import sys

import click

from config.app import create_app
from config.cli.context import command_context
from config.services import Services
from config.serving import listening_socket, serve_until_stopped
from storage import upgrade_database


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """Run the service: webhooks, API, web page and scheduler.

    On SIGTERM it drains: /readyz answers 503, no new connection is taken, work in
    flight gets CALLREC_SHUTDOWN_GRACE to finish, and the process exits within it.
    """
    with command_context(creates=True) as context:
        settings = context.settings
        # Before any work: a serve that cannot listen must not migrate or sweep first.
        try:
            sock = listening_socket(host, port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            click.echo(f"callrec: cannot listen on {host}:{port}: {reason}", err=True)
            sys.exit(2)
        bound = sock.getsockname()[1]
        public = settings.public_url or f"http://{host}:{bound}"

        def announce() -> None:
            click.echo(
                f"callrec listening on http://{host}:{bound} (public URL {public})", err=True
            )
            click.echo(f"data directory: {settings.data_dir.resolve()}", err=True)
            if settings.auth_mode == "dev":
                click.echo(
                    "dev auth: get a token with `.venv/bin/callrec token issue --subject you "
                    "--role supervisor --team mash-children` and paste it into the sign-in "
                    f"form at {public}/ (or send it as a bearer token to the API)",
                    err=True,
                )
            if not settings.push_secrets:
                click.echo(
                    "no push sources: set CALLREC_PUSH_SECRETS=name=secret to accept pushes",
                    err=True,
                )
            enabled, absent = _webhooks(context.services)
            if enabled:
                click.echo(f"webhooks enabled: {'; '.join(enabled)}", err=True)
            if absent:
                click.echo(f"webhooks not configured: {', '.join(absent)}", err=True)

        async def run(services: Services) -> float:
            # The keyring first, so an unsafe one is refused before the database is touched.
            services.keyring.check()
            if settings.uses_embedded_database:
                await upgrade_database(services.database.engine)
            # Grants, tokens and receipts are signed with keys every replica shares.
            await services.load_shared_keys()
            app = create_app(services)
            return await serve_until_stopped(
                app, sock, grace=settings.shutdown_grace, on_listening=announce
            )

        # The app owns the services once it runs and closes them when it stops.
        context.run(run, keep_open=True)
    # Drained and closed: what is left is tearing down the interpreter's heap, most of a
    # second that the grace period cannot spare and that nothing needs.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _webhooks(services: Services) -> tuple[list[str], list[str]]:
    """The webhooks this service answers (each with its path) and the providers it does
    not, read from the parts the app was built with, so the banner cannot disagree."""
    sources = sorted(services.settings.push_secrets)
    enabled = [f"push from {name} at /webhooks/push/{name}" for name in sources]
    absent = []
    providers = {"twilio": services.twilio, "telnyx": services.telnyx, "vonage": services.vonage}
    for name, callbacks in providers.items():
        if callbacks is None:
            absent.append(name)
        else:
            enabled.append(f"{name} at /webhooks/{name}")
    return enabled, absent
