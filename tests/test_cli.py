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
    assert result["dataset"] == "digits" and result["protocol"] == "smoke"
    assert 0.0 <= result["clean"]["final_acc"] <= 1.0 and len(result["test_acc_per_epoch"]) == 2
    assert (tmp_path / "demo_learning_curve.png").stat().st_size > 1000
    assert "clean" in capsys.readouterr().out


def test_demo_bad_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--dataset", "nope", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
