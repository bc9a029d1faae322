"""`make bench` (= python -m bench): runs the `main()` of every `bench/*.py` module, in name order.

Consumes nothing; prints each benchmark's figures under its name. One module failing is
reported and does not stop the others; the exit status is 1 when any failed.
`python -m bench parse hdlc` runs only the named modules.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def modules() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    wanted = sys.argv[1:] if argv is None else argv
    names = [n for n in modules() if not wanted or n in wanted]
    unknown = sorted(set(wanted) - set(modules()))
    if unknown:
        print(f"bench: no module {', '.join(unknown)}; have {', '.join(modules())}")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"== bench/{name}.py")
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{name}")
            runner = getattr(module, "main", None)
            if runner is None:
                print("   (no main(): skipped)")
                continue
            runner()
        except Exception:  # report and carry on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)
    if failed:
        print(f"bench: failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
