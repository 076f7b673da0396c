"""Memory of poisoning: peak RSS growth of `make_poison(name, data, cache=False)` over the uint8 data itself.

Each measurement runs in a fresh child process: it loads N CIFAR-shaped uint8 images from a `.npy` file (so the
process's memory before the attack is the data and the libraries), then samples its resident set size every
2 ms in a thread while the attack runs. Reported: peak growth in MB and as a multiple of the uint8 images, which
include the output (a poisoned copy is 1x). `--pythonpath` measures another checkout of the package (e.g. the
commit before a change) with the same script.

    .venv/bin/python benchmarks/bench_poison_memory.py --record
    .venv/bin/python benchmarks/bench_poison_memory.py --pythonpath /tmp/before --label "before (6e17320)"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_common import emit, load_average, section_header

CHILD = r"""
import json, os, sys, threading, time
import numpy as np, torch
from uel_helpers.data import ImageSet
from uel_helpers.poisons import make_poison

page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page

images = torch.from_numpy(np.load(sys.argv[1]))
labels = torch.arange(len(images)) % 10
ds = ImageSet(images, labels, [str(k) for k in range(10)], name="cifar-shaped")
make_poison(sys.argv[2], ds.subset(torch.arange(100)), cache=False)  # warm up imports and lazy allocations
base = peak = rss()
done = False
def watch():
    global peak
    while not done:
        peak = max(peak, rss())
        time.sleep(0.002)
t = threading.Thread(target=watch)
t.start()
t0 = time.perf_counter()
p = make_poison(sys.argv[2], ds, cache=False)
seconds = time.perf_counter() - t0
done = True
t.join()
peak = max(peak, rss())
print(json.dumps({"growth": peak - base, "data": images.numel(), "seconds": seconds}))
"""


def measure(attack: str, data_path: Path, pythonpath: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-c", CHILD, str(data_path), attack], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{attack}: child failed\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="CIFAR-shaped images (3x32x32)")
    p.add_argument("--attacks", nargs="+", default=["ops", "lsp", "ar", "random-noise-samplewise"])
    p.add_argument("--pythonpath", default=None, help="measure the package found here instead")
    p.add_argument("--label", default="this checkout", help="what the rows measure (e.g. before/after a change)")
    p.add_argument("--record", action="store_true", help="append the results to RESULTS.md")
    args = p.parse_args(argv)
    load_before = load_average()
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "images.npy"
        np.save(data_path, torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=gen).numpy())
        rows = []
        for attack in args.attacks:
            print(f"  {attack} ...", file=sys.stderr, flush=True)
            r = measure(attack, data_path, args.pythonpath)
            rows.append(f"| {attack} | {args.label} | {r['growth'] / 1e6:,.0f} | {r['growth'] / r['data']:.1f}x | "
                        f"{r['seconds']:.2f} |")
    lines = [*section_header("bench_poison_memory.py", torch.device("cpu"), load_before), "",
             f"Peak RSS growth while poisoning {args.n:,} CIFAR-shaped uint8 images ({args.n * 3072 / 1e6:.0f} MB) "
             "with `make_poison(name, data, cache=False)`, in a fresh process per row; the multiple is of the "
             "uint8 data (the poisoned copy itself is 1x).", "",
             "| attack | package | peak RSS growth (MB) | x data | seconds |", "|---|---|---:|---:|---:|", *rows]
    emit(lines, args.record)


if __name__ == "__main__":
    main()
