"""What every benchmark script shares: a description of the machine and appending to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from uel_helpers.device import amp_dtype

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_HEADER = """# Benchmark results

Results of the scripts in `benchmarks/`, newest last. Each section names the script, the exact
command, and the machine it ran on; numbers from different machines are not comparable.
"""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average: other processes on the machine skew CPU timings, so it is recorded."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_lines(dev: torch.device, load_before: float) -> list[str]:
    """Markdown bullets describing the machine, so that recorded numbers can be compared fairly."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    lines = [
        f"- CPU: {cpu_model()}, {cores} cores ({usable} usable), "
        f"torch intra-op threads {torch.get_num_threads()}",
        f"- torch {torch.__version__}, torchvision {_torchvision_version()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}",
        f"- 1-minute load average: {load_before:.2f} before the run, {load_average():.2f} after",
    ]
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        lines.append(f"- device: cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"autocast {amp_dtype(dev)})")
    else:
        lines.append(f"- device: {dev.type}")
    return lines


def section_header(script: str, dev: torch.device, load_before: float) -> list[str]:
    """The opening lines of a RESULTS.md section: script and local time, the exact command, the machine."""
    return [
        f"## {script}, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_lines(dev, load_before),
    ]


def command_line() -> str:
    """The command as typed, for the record (interpreter path relative to the working directory)."""
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(exe), *sys.argv])


def record(lines: list[str]) -> None:
    """Append a section to RESULTS.md, creating it with its header first."""
    text = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"recorded in {RESULTS}", file=sys.stderr)




def _torchvision_version() -> str:
    try:
        import torchvision
    except ImportError:
        return "not installed"
    return torchvision.__version__


def emit(lines: list[str], record_it: bool) -> None:
    """Print a section, and append it to RESULTS.md when asked (`--record`)."""
    print("\n".join(lines))
    if record_it:
        record(lines)
