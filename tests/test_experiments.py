"""experiments.run_experiment / run_matrix and `uel matrix`: results, caching, resuming, bad input."""

from __future__ import annotations

import json

import pytest

from uel_helpers import experiments
from uel_helpers.cli import main
from uel_helpers.data import synthetic_dataset
from uel_helpers.experiments import CONTROL, DataSpec, Result, format_results, run_experiment, run_matrix
from uel_helpers.training import get_protocol

PROTO = get_protocol("smoke").with_(epochs=2, max_train=None, max_test=None)


@pytest.fixture()
def data():
    train_set = synthetic_dataset(n_per_class=12, num_classes=4, channels=3, size=8, seed=0)
    test_set = synthetic_dataset(n_per_class=6, num_classes=4, channels=3, size=8, seed=1)
    return train_set, test_set


@pytest.fixture()
def count_training(monkeypatch):
    """Count real trainings (cache hits do not call `train`)."""
    calls = []
    real = experiments.train

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("protocol"))
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments, "train", counting)
    return calls


def test_evaluate_reports_curves_final_peak_and_baseline(data, count_training):
    r = run_experiment("random-noise-classwise", "jpeg", data, PROTO, seeds=2)
    assert r.seeds == [0, 1] and len(r.test_acc) == 2 and all(len(a) == 2 for a in r.test_acc)
    assert r.final == [a[-1] for a in r.test_acc] and r.peak == [max(a) for a in r.test_acc]
    assert r.reading == "final" and r.accuracy == r.final
    assert r.clean is not None and r.clean.attack == "none" and r.clean.defense == "none"
    assert set(r.seconds) == {"data", "poison", "defense", "train"}
    assert len(count_training) == 4  # 2 seeds poisoned+jpeg, 2 seeds clean
    again = run_experiment("random-noise-classwise", "jpeg", data, PROTO, seeds=2)
    assert len(count_training) == 4 and again.test_acc == r.test_acc  # all from the cache
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))).to_dict() == r.to_dict()


def test_training_time_and_reading_defenses(data, count_training):
    at = run_experiment("none", "adversarial-training", data, PROTO, baseline=False)
    assert count_training[-1].adv_eps == pytest.approx(8 / 255)
    early = run_experiment("none", "early-stopping", data, PROTO, baseline=False)
    assert early.reading == "peak" and early.accuracy == early.peak
    assert "early-stopping" in format_results([at, early])


def test_matrix_resumes_after_an_interruption(data, count_training):
    class Stop(Exception):
        pass

    def stop_after_two(result, done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        run_matrix(["random-noise-classwise"], ["none", "bdr"], data, PROTO, on_result=stop_after_two,
                   include_control=False)
    assert len(count_training) == 2  # clean+none, clean+bdr
    seen = []
    results = run_matrix(["random-noise-classwise"], ["none", "bdr"], data, PROTO,
                         on_result=lambda r, done, total: seen.append((done, total)), include_control=False)
    assert [(r.attack, r.defense) for r in results] == [("none", "none"), ("none", "bdr"),
                                                         ("random-noise-classwise", "none"),
                                                         ("random-noise-classwise", "bdr")]
    assert len(count_training) == 4 and seen[-1] == (4, 4)  # only the two unfinished cells trained


# (call on the (train, test) pair, expected exception, message pattern); one case, one failure
BAD_INPUT = {
    "unknown attack": (lambda d: run_experiment("no-such-attack", "none", d, PROTO), ValueError, "unknown attack"),
    "unknown defense": (lambda d: run_experiment("none", "no-such-defense", d, PROTO), ValueError,
                        "unknown defense"),
    "seeds=0": (lambda d: run_experiment("none", "none", d, PROTO, seeds=0), ValueError, "seeds"),
    "dataset of one set": (lambda d: run_experiment("none", "none", (d[0],), PROTO), TypeError, "dataset"),
    "run_matrix unknown defense": (lambda d: run_matrix(["ar"], ["nope"], d, PROTO), ValueError, "unknown defense"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input(data, call, error, match):
    with pytest.raises(error, match=match):
        call(data)


def test_dataspec_label_and_subset():
    spec = DataSpec("digits", n_per_class=5, as_rgb=True)
    train_set, test_set = spec.load()
    assert len(train_set) == 50 and train_set.channels == 3 and test_set.channels == 3
    assert spec.label == "digits as RGB (5/class)"


def test_cli_matrix_writes_table_csv_json_heatmap(tmp_path, capsys):
    args = ["matrix", "--dataset", "digits", "--n-per-class", "10", "--attacks", "random-noise-classwise",
            "--defenses", "none", "grayscale", "--protocol", "smoke", "--out", str(tmp_path), "--name", "m",
            "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "random-noise-classwise" in out and "grayscale" in out
    for suffix in (".csv", ".json", ".png"):
        assert (tmp_path / f"m{suffix}").stat().st_size > 0
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[0].startswith("attack,defense")  # clean, the control, the attack
    assert [r.split(",")[0] for r in rows[1:]] == ["none", "none", CONTROL, CONTROL, "random-noise-classwise",
                                                    "random-noise-classwise"]
    assert main([*args[:-1]]) == 0  # a second run reuses every cached cell
    assert main(["matrix", "--attacks", "nope", "--protocol", "smoke", "--out", str(tmp_path)]) == 2


def test_matrix_runs_the_later_defenses(data, monkeypatch):
    """D-VAE, RSK+FF and the projection attack are ordinary registry entries: the grid runs them."""
    monkeypatch.setenv("UEL_PROFILE", "smoke")  # D-VAE's size follows the profile
    results = run_matrix(["random-noise-classwise"], ["dvae", "rsk+ff", "projection"], data, PROTO)
    cells = {(r.attack, r.defense) for r in results}
    assert {("random-noise-classwise", d) for d in ("dvae", "rsk+ff", "projection")} <= cells
    assert all(0.0 <= r.mean <= 1.0 for r in results)


def test_summary_reads_the_baseline_the_same_way_as_the_row():
    """A peak row (early stopping) is shown beside the clean run's peak, not its final accuracy."""
    clean = Result("none", "none", "d", "p", [0], "final", [[0.9, 0.8]], [[1.0, 0.5]], [[0.5, 0.6]])
    peak_row = Result("ar", "early-stopping", "d", "p", [0], "peak", [[0.6, 0.3]], [[1.0, 0.5]], [[0.5, 0.9]],
                      clean=clean)
    final_row = Result("ar", "none", "d", "p", [0], "final", [[0.6, 0.3]], [[1.0, 0.5]], [[0.5, 0.9]], clean=clean)
    assert peak_row.summary()["accuracy"] == 0.6 and peak_row.summary()["clean"] == 0.9
    assert final_row.summary()["accuracy"] == 0.3 and final_row.summary()["clean"] == 0.8
    assert final_row.summary()["train_acc"] == 0.9 and final_row.summary()["epochs"] == 2
