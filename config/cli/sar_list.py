"""``callrec sar list``: the subject access requests, nearest deadline first, as the DPO's
page shows them; the command a DPO or an operator runs to see what is due this week."""

from __future__ import annotations

import json
from datetime import date

import click

from config.cli.context import command_context
from config.plurals import counted
from config.services import Services
from storage import CaseView, rfc3339


@click.command("list")
@click.option(
    "--state",
    type=click.Choice(["open", "closed", "all"]),
    default="open",
    show_default=True,
    help="Which requests.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def sar_list(state: str, as_json: bool) -> None:
    """Subject access requests, nearest deadline first: reference, received, due, days
    left (negative when overdue), recordings. Exits 1 while an open request is overdue."""

    async def listed(services: Services) -> tuple[list[CaseView], date]:
        cases = await services.subject_access.listed(state=None if state == "all" else state)
        return cases, services.clock().date()

    with command_context() as context:
        cases, today = context.run(listed)
    overdue = 0
    for case in cases:
        left = (case.deadline - today).days
        late = case.state == "open" and left < 0
        overdue += late
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": str(case.id),
                        "reference": case.reference,
                        "state": case.state,
                        "received": case.received.isoformat(),
                        "deadline": case.deadline.isoformat(),
                        "days_left": left,
                        "overdue": late,
                        "extended": case.extended_at is not None,
                        "recordings": case.recording_count,
                        "opened_at": rfc3339(case.opened_at),
                    }
                )
            )
            continue
        click.echo(
            f"{case.reference}  {case.state}  received {case.received}  due {case.deadline}"
            f"{' (extended)' if case.extended_at else ''}  "
            f"{'OVERDUE by ' + counted(-left, 'day') if late else counted(left, 'day') + ' left'}"
            f"  {counted(case.recording_count, 'recording')}"
        )
    if not as_json:
        click.echo(f"{counted(len(cases), 'request')} ({state})")
    if overdue:
        raise SystemExit(1)
