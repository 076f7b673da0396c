"""learning_speed (pure functions on per-epoch curves) and the notebook-02 figures in plots (fast, no training)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from uel_helpers import plots
from uel_helpers.experiments import Result
from uel_helpers.learning_speed import (
    accuracy_at,
    epochs_to_loss,
    loss_auc,
    peak_final_ratio,
    rank_average,
    spearman,
    speed_label,
    speed_of,
)
from uel_helpers.training import History

# --- learning_speed -----------------------------------------------------------------------------------


def test_epochs_to_loss_is_first_epoch_below_tau_one_based():
    loss = [2.0, 0.9, 0.4, 0.6, 0.05]
    assert epochs_to_loss(loss, 0.5) == 3
    assert epochs_to_loss(loss, 0.1) == 5
    assert epochs_to_loss(loss, 2.5) == 1
    assert epochs_to_loss(loss, 0.4) == 5  # strictly below
    assert epochs_to_loss(loss, 0.01) is None


@pytest.mark.parametrize("tau", [0, -1, float("nan"), float("inf"), "0.5", True])
def test_epochs_to_loss_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        epochs_to_loss([1.0, 0.5], tau)


def test_loss_auc_is_mean_of_first_k_epochs():
    loss = [3.0, 1.0, 0.5, 0.5]
    assert loss_auc(loss, 1) == 3.0
    assert loss_auc(loss, 2) == 2.0
    assert loss_auc(loss, 4) == pytest.approx(1.25)


@pytest.mark.parametrize("k", [0, 5, -1, 1.5, True])
def test_loss_auc_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match="k must be an int epoch in 1..4"):
        loss_auc([3.0, 1.0, 0.5, 0.5], k)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, None], "abc", None])
def test_bad_curves_are_rejected(bad):
    with pytest.raises(ValueError):
        loss_auc(bad, 1)
    with pytest.raises(ValueError):
        epochs_to_loss(bad, 0.5)
    with pytest.raises(ValueError):
        accuracy_at(bad, 1)
    with pytest.raises(ValueError):
        peak_final_ratio(bad)


def test_accuracy_at_and_peak_final_ratio():
    acc = [0.2, 0.6, 0.4, 0.3]
    assert accuracy_at(acc, 1) == 0.2
    assert accuracy_at(acc, 4) == 0.3
    with pytest.raises(ValueError, match="epoch must be an int epoch in 1..4"):
        accuracy_at(acc, 5)
    with pytest.raises(ValueError):
        accuracy_at(acc, 0)
    assert peak_final_ratio(acc) == pytest.approx(2.0)
    assert peak_final_ratio([0.1, 0.5]) == 1.0
    assert peak_final_ratio([0.3, 0.0]) == math.inf
    assert math.isnan(peak_final_ratio([0.0, 0.0]))
    with pytest.raises(ValueError, match=">= 0"):
        peak_final_ratio([0.5, -0.1])


def test_rank_average_ties():
    assert rank_average([10, 30, 20]) == [1.0, 3.0, 2.0]
    assert rank_average([1, 2, 2, 3]) == [1.0, 2.5, 2.5, 4.0]
    assert rank_average([5, 5, 5]) == [2.0, 2.0, 2.0]


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [1, 100, 3, 4, 5]) == pytest.approx(0.4)  # 1 - 6 * 12 / (5 * 24)
    assert spearman([0.1, 0.5, 2.0], [math.exp(v) for v in (0.1, 0.5, 2.0)]) == pytest.approx(1.0)  # ranks only
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        spearman([1], [2])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    x = [0.3, 1.2, 1.2, 0.1, 2.5, 0.3, 0.9]
    y = [10, 50, 40, 10, 90, 20, 45]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_speed_of_and_labels():
    loss, acc = [2.0, 1.0, 0.3], [0.2, 0.6, 0.9]
    assert speed_of(loss, acc, "loss_auc@2") == 1.5
    assert speed_of(loss, acc, "epochs_to_loss<0.5") == 3.0
    assert speed_of(loss, acc, "epochs_to_loss<0.1") == 4.0  # never: T + 1
    assert speed_of(loss, acc, "train_acc@1") == 0.2
    assert "epochs 1-2" in speed_label("loss_auc@2")
    assert "< 0.5" in speed_label("epochs_to_loss<0.5")
    for bad in ("auc", "loss_auc@x", "epochs_to_loss<abc", "loss_auc@4"):
        with pytest.raises(ValueError):
            speed_of(loss, acc, bad)
    with pytest.raises(ValueError, match="training-accuracy"):
        speed_of(loss, None, "train_acc@1")


# --- plots ----------------------------------------------------------------------------------------------


def _result(attack: str, test_acc, train_loss=None, train_acc=None, clean=None) -> Result:
    train_loss = train_loss or [[2.0 / (e + 1) for e in range(len(test_acc[0]))] for _ in test_acc]
    train_acc = train_acc or [[min(1.0, 0.3 * (e + 1)) for e in range(len(test_acc[0]))] for _ in test_acc]
    return Result(attack=attack, defense="none", dataset="toy", protocol="smoke", seeds=list(range(len(test_acc))),
                  reading="final", test_acc=test_acc, train_loss=train_loss, train_acc=train_acc, clean=clean)


@pytest.fixture
def toy_results():
    clean = _result("none", [[0.5, 0.7, 0.8, 0.85] * 3])
    fast = _result("em", [[0.4, 0.2, 0.1, 0.1] * 3, [0.45, 0.25, 0.12, 0.1] * 3],
                   train_loss=[[0.5, 0.1, 0.01, 0.01] * 3] * 2, clean=clean)
    slow = _result("tap", [[0.5, 0.6, 0.4, 0.3] * 3, [0.55, 0.6, 0.35, 0.3] * 3],
                   train_loss=[[2.0, 1.5, 1.0, 0.6] * 3] * 2, clean=clean)
    yield {"em": fast, "tap": slow}
    plt.close("all")


def test_accuracy_curves_marks_peaks_and_epoch(toy_results):
    fig = plots.accuracy_curves(toy_results, mark_epoch=8, reference=toy_results["em"].clean)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("peak 85.0% @ 4") for t in texts)  # the clean reference
    assert any(t.startswith("peak 60.0% @ 2") for t in texts)  # tap: mean over two seeds
    assert any("epoch 8" in t for t in texts)
    assert [line.get_label() for line in ax.get_lines()][:1] == ["clean"]
    short = plots.accuracy_curves(toy_results, mark_epoch=20)
    assert not any("epoch 20" in t.get_text() for t in short.axes[0].texts)


def test_accuracy_curves_accepts_one_result_history_or_list(toy_results):
    h = History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], test_acc=[0.3, 0.4])
    for arg in (toy_results["em"], h, list(toy_results.values()), {"h": h}):
        assert isinstance(plots.accuracy_curves(arg), Figure)
    with pytest.raises(ValueError, match="no results"):
        plots.accuracy_curves({})
    with pytest.raises(ValueError, match="expected an experiments.Result"):
        plots.accuracy_curves({"x": 3})


def test_loss_curves_log_scale(toy_results):
    fig = plots.loss_curves(toy_results, reference=History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.8],
                                                           test_acc=[0.3, 0.4]))
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_yscale() == "log"


def test_speed_vs_peak_titles_spearman(toy_results):
    fig = plots.speed_vs_peak(toy_results, "loss_auc@2")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "Spearman" in ax.get_title() and "+1.00" in ax.get_title()  # faster (em) has the lower peak
    assert "epochs 1-2" in ax.get_xlabel()
    fig = plots.speed_vs_peak(toy_results, "epochs_to_loss<0.5")
    assert "< 0.5" in fig.axes[0].get_xlabel()
    custom = plots.speed_vs_peak(toy_results, {"em": [1, 2], "tap": [3, 4]}, xlabel="my measure")
    assert custom.axes[0].get_xlabel() == "my measure"
    single = plots.speed_vs_peak({"em": toy_results["em"]}, "loss_auc@1")
    assert "undefined" in single.axes[0].get_title()
    with pytest.raises(ValueError, match="no values for"):
        plots.speed_vs_peak(toy_results, {"em": [1]})
    with pytest.raises(ValueError, match="unknown speed measure"):
        plots.speed_vs_peak(toy_results, "fast")


def test_final_vs_peak_ratios(toy_results):
    fig = plots.final_vs_peak(toy_results)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "×4.25" in texts  # em: peak 42.5 / final 10
    assert "×2.00" in texts  # tap: 60 / 30
