"""``callrec serve``: run the service (webhooks, API, web page and background jobs)."""

from __future__ import annotations

import click
from aiohttp import web

from config.app import create_app
from config.cli.context import command_context
from config.services import Services
from storage import upgrade_database


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """Run the service: webhooks, API, web page and scheduler."""
    with command_context() as context:
        settings = context.settings

        async def start(services: Services) -> web.Application:
            # The keyring first, so an unsafe one is refused before the database is touched.
            services.keyring.check()
            if settings.uses_embedded_database:
                await upgrade_database(services.database.engine)
            # Grants, tokens and receipts are signed with keys every replica shares.
            await services.load_shared_keys()
            return create_app(services)

        # The app owns the services from here and closes them when it stops.
        app = context.run(start, keep_open=True)
        public = settings.public_url or f"http://{host}:{port}"
        click.echo(f"callrec listening on http://{host}:{port} (public URL {public})", err=True)
        click.echo(f"data directory: {settings.data_dir.resolve()}", err=True)
        if settings.auth_mode == "dev":
            click.echo(
                "dev auth: get a token with `.venv/bin/callrec token issue --subject you "
                "--role supervisor --team mash-children` and paste it into the sign-in form at "
                f"{public}/ (or send it as a bearer token to the API)",
                err=True,
            )
        if not settings.push_secrets:
            click.echo(
                "no push sources: set CALLREC_PUSH_SECRETS=name=secret to accept pushes",
                err=True,
            )
        web.run_app(app, host=host, port=port, print=None, access_log=None)
