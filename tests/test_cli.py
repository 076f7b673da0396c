"""The `uel` command at the smoke size."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from uel_helpers.cli import main


def test_datasets_lists(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "cifar10" in out


def test_demo_smoke_writes_results(tmp_path, capsys):
    """The demo on the embedded default (digits, 8x8) runs end to end: table, JSON and the one-look figure."""
    assert main(["demo", "--dataset", "digits", "--profile", "smoke", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["dataset"] == "digits (20/class)" and result["protocol"] == "smoke"
    assert list(result["runs"]) == ["clean", "control (random-noise-samplewise)", "cuda", "cuda + rsk+ff"]
    assert all(0.0 <= r["final"] <= 1.0 for r in result["runs"].values())
    assert len(result["test_acc_per_epoch"]["clean"]) == 2
    panels = Image.open(tmp_path / "demo.png").info["Description"]
    for panel in ("examples", "test accuracy per epoch", "final accuracy"):
        assert panel in panels, panels
    out = capsys.readouterr().out
    assert "clean" in out and "cuda + rsk+ff" in out and "none is chosen by its test accuracy" in out


def test_demo_shows_every_defense_tried(tmp_path):
    args = ["demo", "--dataset", "digits", "--profile", "smoke", "--out", str(tmp_path), "--quiet",
            "--attack", "ar", "--defenses", "jpeg", "grayscale"]
    assert main(args) == 0
    runs = json.loads((tmp_path / "demo.json").read_text())["runs"]
    assert list(runs)[2:] == ["ar", "ar + jpeg", "ar + grayscale"]
    assert main([*args[:-2], "nope"]) == 2


def test_demo_figure_has_its_panels():
    import torch

    from uel_helpers.plots import demo_figure

    rows = {"clean": torch.zeros(4, 1, 8, 8, dtype=torch.uint8), "δ": torch.randn(4, 1, 8, 8) / 50}
    fig = demo_figure(rows, {"clean": [0.5, 0.9], "poison": [0.4, 0.2]}, {"clean": 0.9, "poison": 0.2},
                      signed=["δ"], title="t")
    titles = [ax.get_title("left") or ax.get_title() for ax in fig.axes]
    assert "examples" in titles and "test accuracy per epoch" in titles and "final accuracy" in titles
    assert len(fig.axes) == 2 * 4 + 2
    with pytest.raises(ValueError, match="same"):
        demo_figure({"a": torch.zeros(2, 1, 4, 4), "b": torch.zeros(3, 1, 4, 4)}, {"a": [0.1]}, {})


def test_demo_bad_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--dataset", "nope", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_demo_rejects_a_non_positive_test_size(tmp_path, capsys):
    assert main(["demo", "--max-test", "0", "--profile", "smoke", "--dataset", "digits", "--out", str(tmp_path)]) == 2
    assert "--max-test: expected a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["esvm", "random", "trak"])
def test_attribute_smoke_on_digits(tmp_path, capsys, method):
    if method == "trak":
        pytest.importorskip("trak")
    args = ["attribute", "--dataset", "digits", "--profile", "smoke", "--method", method, "--test-index", "0", "7",
            "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test 0 (" in out and "test 7 (" in out
    saved = json.loads((tmp_path / f"attribution_digits_{method}.json").read_text())
    assert saved["test_indices"] == [0, 7] and len(saved["top_k"][0]) == saved["k"] == 5
    assert (tmp_path / f"attribution_digits_{method}.png").read_bytes()[:4] == b"\x89PNG"


def test_attribute_rejects_a_test_index_out_of_range(tmp_path, capsys):
    assert main(["attribute", "--dataset", "digits", "--profile", "smoke", "--test-index", "99999",
                 "--out", str(tmp_path)]) == 2
    assert "--test-index: [99999] out of range; digits has 450 test images" in capsys.readouterr().err
