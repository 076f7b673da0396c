"""The benchmark scripts run end to end on tiny sizes and print a RESULTS.md section (without recording it).

They measure speed, so nothing here is timed: this only guards against a script that no longer runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_common  # noqa: E402  (the scripts import it as a top-level module)

TINY = {
    "bench_attribution": ["--device", "cpu", "--n-train", "200", "--dim", "8", "--n-test", "4", "--esvm-test", "2",
                          "--profile", "smoke", "--ssl-epochs", "1", "--n-jobs", "1"],
    "bench_sharpen": ["--device", "cpu", "--n", "64", "--ref-n", "8", "--batch", "32", "--repeats", "1"],
    "bench_protonet": ["--device", "cpu", "--preset", "quick", "--per-class", "25", "--size", "16", "--steps", "1",
                       "--warmup", "0", "--eval-episodes", "2", "--eval-batch", "2"],
    "bench_poisons": ["--device", "cpu", "--n", "64", "--repeats", "1", "--attacks", "cuda", "ar"],
    "bench_dvae": ["--device", "cpu", "--profile", "smoke", "--n", "40", "--epochs", "1", "--shape", "3", "16"],
    "bench_demo": ["--demo-args", "--dataset", "digits", "--profile", "smoke"],
    "bench_judge": ["--synthetic", "--n-per-class", "2", "--n-test", "20", "--epochs", "1", "--models", "smallcnn",
                    "--full"],
    "bench_training": ["--device", "cpu", "--steps", "1", "--warmup", "0", "--pipeline-steps", "1",
                       "--batch-size", "8", "--models", "fastnet-small", "--num-workers", "0"],
    "bench_segmentation": ["--device", "cpu", "--size", "16", "--batch", "4", "--steps", "1", "--warmup", "0",
                           "--fill-images", "2", "--fill-steps", "2"],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_prints_a_section(script, capsys, monkeypatch, tmp_path):
    module = __import__(script)
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench_common, "RESULTS", results)  # a --record by mistake must not touch the real file
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *TINY[script]])
    module.main(TINY[script])
    out = capsys.readouterr().out
    assert f"## {script}.py, " in out and "Command: `" in out and "- device: cpu" in out
    assert "|---" in out  # a markdown table of results
    assert not results.exists()


def test_section_header_names_script_command_and_machine(monkeypatch):
    import torch

    monkeypatch.setattr(sys, "argv", ["bench_x.py", "--n", "3"])
    lines = bench_common.section_header("bench_x.py", torch.device("cpu"), 0.5)
    assert lines[0].startswith("## bench_x.py, ") and lines[2].endswith("bench_x.py --n 3`")
    assert any(line.startswith("- CPU: ") for line in lines) and lines[-1] == "- device: cpu"
    assert "0.50 before the run" in "\n".join(lines)
