"""Every `callrec` command docs/operations.md tells an operator to type parses against the
command line itself (click's parser, nothing run), so the guide cannot drift from the CLI;
and it has the runbook every alert rule points at."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from tests.deploy.cli_lines import callrec_invocations, parse_command
from tests.deploy.manifests import BASE

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# A fence may be indented (a code block inside a numbered step).
_FENCE = re.compile(r"^ *```([^\n`]*)\n(.*?)^ *```", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`([^`]+)`")
_SHELL_BLOCKS = {"", "sh", "shell", "bash", "console"}
_MENTIONS_CALLREC = re.compile(r"(?:^|\s)callrec\s")


def guide_commands(text: str) -> list[tuple[str, list[str]]]:
    """(where, arguments) of every `callrec` command: in shell code blocks (a line ending in
    a backslash continues on the next) and in inline code that starts with `callrec `."""
    found: list[tuple[str, list[str]]] = []
    for block in _FENCE.finditer(text):
        if block.group(1).strip() not in _SHELL_BLOCKS:
            continue
        for line in block.group(2).replace("\\\n", " ").splitlines():
            if _MENTIONS_CALLREC.search(line):
                found.extend((line.strip(), args) for args in callrec_invocations(line))
    prose = _FENCE.sub("", text)
    for span in _INLINE.finditer(prose):
        code = " ".join(span.group(1).split())
        if code.startswith("callrec "):
            found.extend((code, args) for args in callrec_invocations(code))
    return found


GUIDE_COMMANDS = guide_commands(GUIDE.read_text())


def test_the_guide_gives_the_commands_an_operator_needs() -> None:
    # The extraction itself is checked: a guide whose commands it stopped finding would
    # pass every test below without checking anything.
    named = {" ".join(parse_command(args)) for _, args in GUIDE_COMMANDS}
    assert {
        "callrec db upgrade",
        "callrec audit verify",
        "callrec audit accept-restore",
        "callrec retention run",
        "callrec retention status",
        "callrec verify",
        "callrec keys rotate",
        "callrec keys rewrap",
        "callrec keys status",
        "callrec fetches",
        "callrec fetches retry",
        "callrec fetches discard",
        "callrec renditions",
        "callrec renditions retry",
        "callrec token issue",
    } <= named


@pytest.mark.parametrize(("line", "args"), GUIDE_COMMANDS, ids=[line for line, _ in GUIDE_COMMANDS])
def test_each_command_in_the_guide_parses(line: str, args: list[str]) -> None:
    try:
        parse_command(args)
    except click.UsageError as exc:
        pytest.fail(f"docs/operations.md: {line!r} does not parse: {exc.format_message()}")


@pytest.mark.parametrize(
    "line",
    [
        "callrec keys rotate --force",
        "callrec sar purge",
        "callrec token issue --role supervisor",
        "callrec fetches discard",
        "callrec verify --sample many",
        "docker compose exec callrec-1 callrec retention sweep",
    ],
)
def test_a_command_the_cli_does_not_have_is_caught(line: str) -> None:
    (args,) = callrec_invocations(line)
    with pytest.raises(click.UsageError):
        parse_command(args)


def test_words_that_name_the_user_or_the_unit_are_not_commands() -> None:
    lines = [
        "createdb --owner callrec callrec",
        "systemctl enable --now callrec && systemctl reload caddy",
        "docker compose -f deploy/compose.yaml -p callrec stop callrec-1 callrec-2",
        "journalctl -u callrec -f",
    ]
    assert [list(callrec_invocations(line)) for line in lines] == [[], [], [], []]


def test_every_alert_has_its_runbook_heading() -> None:
    # The alerts as the shipped rules define them: a rule added there needs its runbook.
    rules = yaml.safe_load((BASE / "prometheusrule.yaml").read_text())["spec"]["groups"]
    alerts = [rule["alert"] for group in rules for rule in group["rules"] if "alert" in rule]
    assert alerts
    headings = re.findall(r"^### (\S+)$", GUIDE.read_text(), re.MULTILINE)
    missing = [alert for alert in alerts if alert not in headings]
    assert not missing, f"docs/operations.md has no '### <name>' runbook for {missing}"


def heading_anchors(markdown: str) -> set[str]:
    """The anchors a renderer makes of a file's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", _FENCE.sub("", markdown), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
        anchors.add(slug.replace(" ", "-"))
    return anchors


def test_every_link_to_the_repository_leads_somewhere() -> None:
    text = GUIDE.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", _FENCE.sub("", text))
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local
    for link in local:
        path, _, anchor = link.partition("#")
        target = (GUIDE.parent / path).resolve() if path else GUIDE
        assert target.is_file(), link
        if anchor:
            assert anchor in heading_anchors(target.read_text()), link
