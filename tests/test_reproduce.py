"""`uel reproduce`: the published rows run end to end on CIFAR-shaped data at smoke, and resume from the cache."""

from __future__ import annotations

import json

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
