"""Wall time of `uel demo` from an empty cache: what a new user waits for after installing.

The new-user issue asks for a demo that convinces in <= 3 minutes on 2 CPU cores. This runs the demo as the
README's `make demo` does (default dataset, attack, defenses and profile) in a fresh cache and records the wall
time and the table it printed.

    .venv/bin/python benchmarks/bench_demo.py --record
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

from bench_common import RESULTS, emit, load_average, section_header

from uel_helpers.cli import main as uel_main
from uel_helpers.device import pick_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo-args", nargs=argparse.REMAINDER, default=[],
                   help="extra arguments for `uel demo` (default: none, as `make demo`)")
    p.add_argument("--record", action="store_true", help=f"append the results to {RESULTS.name}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    os.environ["UEL_CACHE"] = str(out / "cache")  # from an empty cache
    demo = ["demo", "--out", str(out / "results"), "--quiet", *args.demo_args]
    printed = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        code = uel_main(demo)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"uel demo failed ({code}):\n{printed.getvalue()}")
    summary = json.loads((out / "results" / "demo.json").read_text())
    rows = [f"| {name} | {100 * r['final']:.2f} | {100 * r['peak']:.2f} @{r['peak_epoch']:.0f} | {r['epochs']:.0f} | "
            f"{100 * (r['train_acc'] or 0):.1f} |" for name, r in summary["runs"].items()]
    lines = [
        *section_header("bench_demo.py", pick_device("auto"), load_before),
        "",
        f"`uel {' '.join(demo[:1] + args.demo_args)}` from an empty cache: **{wall:.0f} s** wall time ({wall / 60:.1f} "
        f"min), {summary['dataset']}, judge `{summary['protocol']}` ({summary['model']}), seed {summary['seed']}:",
        "",
        "| training set | final (%) | peak (%) | epochs | train acc (%) |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
