"""The `uel` command at the smoke size."""

from __future__ import annotations

import json

from uel_helpers.cli import main


def test_datasets_lists(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "cifar10" in out


def test_demo_smoke_writes_results(tmp_path, capsys):
    assert main(["demo", "--dataset", "digits", "--profile", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["dataset"] == "digits (20/class)" and result["protocol"] == "smoke"
    assert set(result["defenses_tried"]) == {"jpeg", "grayscale", "bdr"}
    best = result["best_defense"]
    assert result["defenses_tried"][best] == max(result["defenses_tried"].values())
    assert list(result["runs"]) == ["clean", "AR", f"AR + {best}"]
    assert all(0.0 <= r["final"] <= 1.0 for r in result["runs"].values())
    assert len(result["test_acc_per_epoch"]["clean"]) == 2
    assert (tmp_path / "demo.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "clean" in out and "AR + " in out


def test_demo_bad_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--dataset", "nope", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
