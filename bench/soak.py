"""The soak of ``tests/e2e/test_soak.py`` as a bench run: the waits, the memory, the books.

50 users (``--users``) for two minutes (``--seconds``) send ID photos, compressed photos,
files that are no image, damaged JPEGs and scan bombs to ``python -m bot`` (jumdata check,
JD Cloud analysis, the local fallback, SQLite) over loopback, while the fake providers
answer a share of calls 503, bill and never answer, or ask to slow down, and the fake
Telegram answers a share of sends 429. Prints the wait from each update to its reply
(median, p99, longest), the bot process's peak RSS (VmHWM) and whether the books agree.

    python -m bench.soak [--seconds 120] [--users 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.e2e.soak import SoakConfig, run_soak
from tests.local_photos import sample_photos

PORTRAITS = ("obama.jpg", "obama2.jpg", "biden.jpg", "obama3.jpg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    photos = sample_photos()
    portraits = [photos[name].read_bytes() for name in PORTRAITS]
    config = SoakConfig(users=args.users, seconds=args.seconds, seed=args.seed)
    result = asyncio.run(run_soak(config, portraits))
    print(result.summary())
    problems = result.mismatches()
    print("books: agree exactly" if not problems else "books DISAGREE:")
    for line in problems:
        print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
