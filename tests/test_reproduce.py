"""`uel reproduce`: the published rows run end to end on CIFAR-shaped data at smoke, and resume from the cache."""

from __future__ import annotations

import json

import pytest

from uel_helpers.cli import main
from uel_helpers.reproduce import PAPER_ROWS, PaperRow, ReproducedRow, format_reproduction


def test_published_rows_name_registered_attacks_and_defenses():
    from uel_helpers.defenses import REGISTRY as DEFENSES
    from uel_helpers.poisons import REGISTRY as ATTACKS

    for row in PAPER_ROWS:
        assert row.attack == "none" or row.attack in ATTACKS, row
        assert row.defense in DEFENSES, row
        assert 0 < row.published < 100 and row.source
    keys = {(r.attack, r.defense): r.published for r in PAPER_ROWS}
    assert keys[("ar", "none")] == 11.75 and keys[("cuda", "rsk+ff")] == 78.53 and keys[("none", "none")] == 94.34


def test_gap_is_measured_minus_published():
    row = ReproducedRow(PaperRow("ar", "none", 11.75, "x"))
    assert row.measured is None and row.gap is None and "| ar | none | - | 11.75 | - |" in format_reproduction([row])


def test_reproduce_runs_on_cifar_shaped_data_at_smoke_and_resumes(tmp_path, capsys):
    args = ["reproduce", "--dataset", "synthetic-cifar", "--n-per-class", "6", "--profile", "smoke",
            "--rows", "none+none", "ar+none", "ar+jpeg", "cuda+rsk+ff", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table = json.loads((tmp_path / "reproduce_synthetic-cifar_smoke.json").read_text())
    assert [(r["attack"], r["defense"]) for r in table] == [("none", "none"), ("ar", "none"), ("ar", "jpeg"),
                                                           ("cuda", "rsk+ff")]
    assert all(0 <= r["measured"] <= 100 and r["gap"] == r["measured"] - r["published"] for r in table)
    assert "published" in (tmp_path / "reproduce_synthetic-cifar_smoke.md").read_text() and "[4/4]" in out
    assert main(args) == 0  # a second call reads every row from the cache
    assert main([*args[:9], "nope+none", "--out", str(tmp_path)]) == 2


def test_reproduce_runs_on_padded_digits_as_rgb(tmp_path):
    """The offline stand-in for CIFAR-10 (Fashion-MNIST padded to 32x32 as RGB), shown on digits at smoke."""
    args = ["reproduce", "--dataset", "digits", "--pad-to", "32", "--rgb", "--n-per-class", "5", "--profile", "smoke",
            "--rows", "none+none", "cuda+none", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    table = json.loads((tmp_path / "reproduce_digits_smoke.json").read_text())
    assert [r["attack"] for r in table] == ["none", "cuda"]
    assert main([*args[:3], "--pad-to", "4", *args[5:]]) == 2  # padding never crops


def test_pad_centres_and_never_crops():
    import torch

    from uel_helpers.data import ImageSet, pad

    ds = ImageSet(torch.full((2, 1, 28, 28), 200, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    out = pad(ds, 32)
    assert out.shape == (1, 32, 32) and int(out.images[:, :, 2:30, 2:30].min()) == 200
    assert int(out.images.sum()) == int(ds.images.sum())
    with pytest.raises(ValueError, match="never crops"):
        pad(ds, 20)
    with pytest.raises(TypeError, match="int"):
        pad(ds, 32.0)
