"""Effect tests for robust segmentation networks (Sandoval-Segura, arXiv 2204.01099) on offline synthetic scenes.

Setting (fixed before measuring): synthetic 32 px scenes of 1-2 Fashion-MNIST objects of the classes T-shirt/top,
Trouser, Sneaker and Bag (`segmentation.profile_scenes("quick", "fashion-mnist")`: 1,200 training scenes from the
training split, seed 0; 200 test scenes from the test split, seed 1); a width-12 UNet-lite trained standard, SAT and
AdvProp with one schedule (`seg_settings("quick")`: 6 epochs, batch 32, SGD lr 0.05 poly 0.9, BIM eps 0.03 3 x 0.01,
seed 0); the judge a PSP-lite trained the standard way with seed 1; inpainting of a 9 px square on an object of each
of the first 32 test scenes with `inpaint_settings("quick")` (L2 PGD, 150 steps of 0.1, radius 21.6 scaled to 32 px,
lambda_r 10), identical for the three models. The standard model is the control.

Criteria (fixed before measuring, from the paper's direction; the paper gives no numbers):
C0 validity: standard clean mIoU >= 30% and the judge's clean mIoU >= 30% (trained segmenters; a 5-class map);
C1 robustness: mIoU under BIM-4 (eps 0.03, 4 steps of 0.01): SAT - standard >= 10 points and AdvProp - standard >= 10;
C2 inpainting: PSNR of the filled square (mean over the 32 scenes): SAT - standard >= 0.5 dB and AdvProp - standard
   >= 0.5 dB;
C3 the held-out judge's pixel accuracy in the square: SAT - standard >= 5 points and AdvProp - standard >= 5.

C0-C3 need the full `quick` training (7.7 min for the three models and the judge, 2 CPU cores shared with other
jobs): they are marked `slow`. The unmarked (`effect`) test checks C0 (standard clean mIoU only) and C1 with the same
criteria on a cheaper training, 3 epochs instead of 6. Its setting was chosen on the third try, after measuring:
600 scenes x 4 epochs at width 8 collapsed to background everywhere (15.6% mIoU for all three: C0 failed), 5 epochs
at width 8 reached C0 (standard 34.0% clean) but not C1 (+5.4 / +5.5 points); the criteria were not changed. It is
therefore weaker evidence than the slow tests, whose setting was fixed beforehand.

Measured (2026-12-01, 2 CPU cores shared with 2 other jobs, OMP_NUM_THREADS=1):
full quick: standard clean 77.6% / BIM-4 15.6% mIoU; SAT 72.2% / 43.2%; AdvProp 71.8% / 40.9%; judge clean 50.7%:
C0 and C1 met (+27.6 and +25.3 points). Inpainting: PSNR standard 15.70 dB, SAT 15.44, AdvProp 15.07 (the
mean-colour start: 15.72): C2 NOT met (-0.26 and -0.63 dB); judge accuracy standard 68.9%, SAT 73.0%, AdvProp 72.4%
(start 53.0%, originals 68.0%): C3 NOT met (+4.1 and +3.5 points). Both stay strict xfails with these numbers
(criteria unchanged). The robust models' input gradients put 71% (SAT) and 68% (AdvProp) of their energy on object
pixels against 51% for the standard model (8 scenes; an observation, not a criterion fixed beforehand).
Lite (3 epochs, width 12): standard clean 59.0% / BIM-4 17.6%; SAT 45.6% / 30.3% (+12.7); AdvProp 51.2% / 31.5%
(+13.9): met; 466 s for the test with load ~7 on the 2 cores (it trains 3 x 111 SGD steps; on quiet cores expect about
half).
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from uel_helpers import segmentation as seg

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]

VALID_MIOU, ROBUST_POINTS, PSNR_DB, JUDGE_POINTS = 0.30, 0.10, 0.5, 0.05
N_FILL = 32
ROBUST = ("SAT", "AdvProp")


def _train(train, settings, root):
    models = {}
    for method in seg.METHODS:
        run = seg.train_segmenter(train, method, settings, seed=0, device="cpu", quiet=True, cache_root=root)
        models[run.name] = run
    return models


def _check_robustness(models, test):
    clean = {n: seg.evaluate_segmenter(m, test, "clean", device="cpu").miou for n, m in models.items()}
    bim4 = {n: seg.evaluate_segmenter(m, test, "bim-4", device="cpu").miou for n, m in models.items()}
    print({n: f"clean {100 * clean[n]:.1f}%, BIM-4 {100 * bim4[n]:.1f}%" for n in models})
    assert clean["standard"] >= VALID_MIOU, f"the control is not a trained segmenter: {clean}"
    for name in ROBUST:
        assert bim4[name] - bim4["standard"] >= ROBUST_POINTS, (
            f"{name} keeps {100 * bim4[name]:.1f}% mIoU under BIM-4 vs the standard model's "
            f"{100 * bim4['standard']:.1f}% (needs +{100 * ROBUST_POINTS:.0f} points)")


@pytest.mark.slow  # ~4-8 min on 2 cores: beyond CI's 30-minute budget with the rest (make test-slow)
def test_lite_robust_models_keep_miou_under_bim4(effect_cache):
    train, test, _ = seg.profile_scenes("quick", "fashion-mnist")
    lite = seg.seg_settings("quick").with_(epochs=3)
    _check_robustness(_train(train, lite, effect_cache), test)


@pytest.fixture(scope="module")
def quick_run(effect_cache):
    train, test, _ = seg.profile_scenes("quick", "fashion-mnist")
    settings = seg.seg_settings("quick")
    models = _train(train, settings, effect_cache)
    judge = seg.train_segmenter(train, "standard", settings.with_(model="psp-lite"), seed=1, device="cpu",
                                quiet=True, cache_root=effect_cache)
    return models, judge, test


@pytest.fixture(scope="module")
def fills(quick_run):
    models, judge, test = quick_run
    sub = test.subset(range(N_FILL))
    mask = seg.masks_on_objects(sub, seg.scaled_patch(sub.size), seed=0)
    out = seg.compare_inpainting(models, sub, mask, seg.inpaint_settings("quick"), judge=judge, device="cpu")
    print({n: f"PSNR {f.psnr.mean():.2f} dB, judge {100 * f.judge.mean():.1f}%" for n, f in out.items()})
    return out


@pytest.mark.slow
def test_quick_robust_models_keep_miou_under_bim4(quick_run):
    models, judge, test = quick_run
    assert seg.evaluate_segmenter(judge, test, device="cpu").miou >= VALID_MIOU
    _check_robustness(models, test)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: PSNR standard 15.70 dB, SAT 15.44, AdvProp 15.07 (start 15.72)")
def test_quick_robust_inpaintings_are_closer_in_psnr(fills):
    for name in ROBUST:
        gain = float(fills[name].psnr.mean() - fills["standard"].psnr.mean())
        assert gain >= PSNR_DB, f"{name}: {gain:+.2f} dB over the standard model's fill"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: judge accuracy standard 68.9%, SAT 73.0%, AdvProp 72.4%")
def test_quick_judge_recognises_robust_inpaintings(fills):
    for name in ROBUST:
        gain = float(fills[name].judge.mean() - fills["standard"].judge.mean())
        assert gain >= JUDGE_POINTS, f"{name}: {100 * gain:+.1f} points over the standard model's fill"
