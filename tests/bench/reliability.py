"""The reliability figures in docs/reliability.md, in one command.

``python -m tests.bench.reliability [--quick] [--rounds N] [--mutations N]
[--budget-minutes M]`` (also the
``reliability`` part of ``python -m tests.bench``): the kill -9 harness
(``tests.bench.kill9``), the mutation suite (``tests.bench.mutation``) and the attack
corpora (``tests.bench.corpora``), each printing its table. Each module also runs alone,
with more knobs (``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from tests.bench.corpora import print_corpora
from tests.bench.kill9 import report, run_rounds
from tests.bench.mutation import run_mutations

ROUNDS = 1000
MUTATIONS = 10_000


async def run_reliability(
    quick: bool,
    rounds: int = ROUNDS,
    mutations: int = MUTATIONS,
    budget_minutes: float | None = None,
) -> None:
    """Every table; ``quick``: 5 kill rounds and 500 mutations of each kind. The kill
    rounds stop being started after ``budget_minutes`` (the table says how many ran)."""
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print()
    await run_mutations(500 if quick else mutations, 500 if quick else mutations)
    print()
    await asyncio.to_thread(print_corpora)
    print()
    figures, wall_s, audit, scrub = await run_rounds(
        5 if quick else rounds,
        senders=4,
        kill_within_s=1.0,
        push_for_s=3.0,
        chain_every=10,
        seed=16,
        budget_s=None if budget_minutes is None else budget_minutes * 60,
    )
    report(figures, wall_s, audit, scrub)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="kill -9 rounds (two kills each)"
    )
    parser.add_argument(
        "--mutations", type=int, default=MUTATIONS, help="object and audit-row mutations, each"
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        help="start no kill round after this many minutes of the kill harness",
    )
    arguments = parser.parse_args()
    asyncio.run(
        run_reliability(
            arguments.quick, arguments.rounds, arguments.mutations, arguments.budget_minutes
        )
    )


if __name__ == "__main__":
    main()
