"""The attack corpora the test suite holds, counted by running them.

``python -m tests.bench.corpora``: each corpus is a set of test modules (or tests in
them) that throw one kind of attack at the real service; they are run with pytest and
``--junitxml``, and every test case (each parametrised case counts once) is one attack
tried. Printed: cases, failures (an attack that got through, or a test that broke),
errors and skips, per corpus, and the command that reproduces it. The cases are the
tests' own; nothing here decides what passes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

CORPORA: dict[str, tuple[str, ...]] = {
    "SSRF and provider-URL attacks (redirects off origin, private and reserved addresses, "
    "names resolving to them, credentials across origins)": (
        "tests/recorder/test_fetcher.py",
        "tests/recorder/test_twilio.py::test_a_recording_url_at_a_private_address_is_refused_before_queueing",
    ),
    "hostile and malformed input (push bodies, signatures, provider webhooks and their "
    "nesting, decompression bombs, slow and unsigned uploads, hold bodies, request ids)": (
        "tests/recorder/test_push_hostile.py",
        "tests/recorder/test_push_bombs.py",
        "tests/recorder/test_push_flood.py",
        "tests/recorder/test_telnyx.py::test_a_signed_event_nested_30000_deep_is_422_and_queues_nothing",
        "tests/recorder/test_vonage.py::test_a_signed_event_nested_30000_deep_is_422_and_queues_nothing",
        "tests/recorder/test_provider_signatures.py",
        "tests/retention/test_holds.py::test_hostile_hold_bodies_get_json_errors",
        "tests/config/test_app.py::test_a_sane_request_id_is_kept_and_a_hostile_one_replaced",
    ),
    "authorisation attacks (role and team matrix, IDOR, grants, tokens, grants outliving a team)": (
        "tests/retrieval/test_authorisation_matrix.py",
        "tests/retrieval/test_auth.py",
        "tests/retrieval/test_listening.py",
    ),
    "tampering with what is served (an altered segment or header, mid-answer), and the "
    "grant kept out of the request log": ("tests/retrieval/test_playback_failures.py",),
}


@dataclass(frozen=True)
class Outcome:
    cases: int
    failures: int
    errors: int
    skipped: int
    seconds: float
    failed: tuple[str, ...]


def run_corpus(selection: tuple[str, ...], workers: int) -> Outcome:
    """Run the tests; count their cases from the JUnit XML pytest writes."""
    with tempfile.TemporaryDirectory(prefix="callrec-corpus-") as scratch:
        report = Path(scratch) / "report.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        if workers > 1:
            command += ["-n", str(workers), "--dist", "loadfile"]
        began = time.perf_counter()
        subprocess.run(
            [*command, f"--junitxml={report}", *selection],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - began
        if not report.exists():
            return Outcome(0, 0, 1, 0, seconds, ("pytest wrote no report",))
        cases = failures = errors = skipped = 0
        failed: list[str] = []
        # The report is the one pytest just wrote here, not input from outside.
        root = ElementTree.parse(report).getroot()  # noqa: S314
        for case in root.iter("testcase"):
            cases += 1
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None:
                failures += 1
                failed.append(name)
            elif case.find("error") is not None:
                errors += 1
                failed.append(name)
            elif case.find("skipped") is not None:
                skipped += 1
    return Outcome(cases, failures, errors, skipped, seconds, tuple(failed))


def print_corpora(workers: int = 1) -> None:
    """Run every corpus and print its row of the table."""
    print("| corpus | cases | failures | errors | skipped | time | command |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed: list[str] = []
    for name, selection in CORPORA.items():
        outcome = run_corpus(selection, workers)
        failed += outcome.failed
        print(
            f"| {name} | {outcome.cases} | {outcome.failures} | {outcome.errors} | "
            f"{outcome.skipped} | {outcome.seconds:.0f} s | "
            f"`pytest {' '.join(selection)}` |",
            flush=True,
        )
    for name in failed:
        print(f"- failed: {name}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.corpora", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist workers (<= 2)")
    print_corpora(parser.parse_args().workers)


if __name__ == "__main__":
    main()
