"""Unit tests of `uel_helpers.segmentation` (notebook 09): attacks, MixBN, metrics, scenes, VOC loading (mocked),
training, inpainting, the explorer's data, and bad input. Tiny sizes: seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from uel_helpers.data import ImageSet
from uel_helpers.segmentation import (
    IGNORE,
    VOC_CLASSES,
    InpaintSettings,
    MixBatchNorm2d,
    SegScenes,
    SegScores,
    attack_by_name,
    bim_attack,
    build_segmenter,
    compare_inpainting,
    confusion_matrix,
    convert_mixbn,
    corrupt,
    edit_targets,
    evaluate_segmenter,
    inpaint,
    inpainting_views,
    input_gradients,
    judge_accuracy,
    linf_attack,
    make_scenes,
    masks_on_objects,
    object_share,
    profile_scenes,
    region_psnr,
    region_ssim,
    relabel_object,
    render_view,
    scaled_eps,
    seg_settings,
    set_bn_route,
    square_mask,
    train_segmenter,
)
from uel_helpers.segmentation import data as seg_data
from uel_helpers.segmentation.train import adversarial_batch

# --- fixtures ---------------------------------------------------------------------------------------------


def shapes_source(n_per_class: int = 4) -> ImageSet:
    """Object images with a known shape per class on a black background: 0 = solid square, 1 = horizontal bar."""
    imgs = torch.zeros(2 * n_per_class, 1, 28, 28, dtype=torch.uint8)
    imgs[:n_per_class, :, 4:24, 4:24] = 255
    imgs[n_per_class:, :, 11:17, 2:26] = 255
    labels = torch.tensor([0] * n_per_class + [1] * n_per_class)
    return ImageSet(imgs, labels, ("square", "bar"), name="shapes")


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(shapes_source(), 12, size=16, objects=(1, 2), scale=(0.5, 0.8), seed=3)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_segmenter("unet-lite", 3, width=4, image_size=16).eval()


# --- attacks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["bim-3", "pgd-5"])
def test_attacks_stay_inside_eps_and_the_pixel_range(net, attack):
    x = torch.rand(4, 3, 16, 16)
    x[0] = 0.0  # pixels at the bounds: the attack must not leave [0, 1]
    x[1] = 1.0
    y = torch.randint(0, 3, (4, 16, 16))
    spec = attack_by_name(attack, eps=0.05)
    adv = linf_attack(net, x, y, spec.eps, spec.steps, spec.step, spec.random_start,
                      torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.05 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 0.01  # it moved
    assert not net.training  # mode restored


def test_bim_raises_the_loss_and_follows_the_recipe(net):
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    adv = bim_attack(net, x, y, eps=0.03, steps=3)
    with torch.no_grad():
        clean = torch.nn.functional.cross_entropy(net(x), y)
        attacked = torch.nn.functional.cross_entropy(net(adv), y)
    assert attacked > clean
    spec = attack_by_name("bim-4")
    assert (spec.eps, spec.steps, spec.step, spec.random_start) == (0.03, 4, 0.01, False)
    pgd = attack_by_name("pgd-20")
    assert pgd.random_start and math.isclose(pgd.step, 2.5 * 0.03 / 20)


def test_ignore_label_is_not_attacked(net):
    """With every pixel ignored, there is no loss to climb: BIM leaves the images unchanged."""
    x = torch.rand(2, 3, 16, 16)
    adv = bim_attack(net, x, torch.full((2, 16, 16), IGNORE), eps=0.03, steps=2)
    assert torch.equal(adv, x)


# --- MixBN ------------------------------------------------------------------------------------------------


def test_mixbn_routes_halves_to_the_right_bn():
    bn = MixBatchNorm2d(2).train()
    with torch.no_grad():
        bn.bias.fill_(0.0)
        bn.aux_bn.bias.fill_(10.0)
    x = torch.cat([torch.randn(4, 2, 3, 3) + 5.0, torch.randn(4, 2, 3, 3) - 5.0])
    bn.route = "mix"
    out = bn(x)
    assert out[:4].mean().abs() < 1e-4 and (out[4:].mean() - 10).abs() < 1e-4
    # each BN saw only its half: main's running mean moved towards +5, aux's towards -5 (momentum 0.1)
    assert torch.allclose(bn.running_mean, torch.full((2,), 0.5), atol=0.15)
    assert torch.allclose(bn.aux_bn.running_mean, torch.full((2,), -0.5), atol=0.15)
    bn.route = "adv"
    assert (bn(x).mean() - 10).abs() < 1e-4
    bn.route = "clean"
    assert bn(x).mean().abs() < 1e-4


def test_convert_mixbn_replaces_every_bn_and_set_route_reaches_them():
    torch.manual_seed(0)
    plain = build_segmenter("psp-lite", 3, width=4, image_size=16)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    torch.manual_seed(0)
    mixed = convert_mixbn(build_segmenter("psp-lite", 3, width=4, image_size=16))
    mix_modules = [m for m in mixed.modules() if isinstance(m, MixBatchNorm2d)]
    assert len(mix_modules) == n_bn and all(m.route == "clean" for m in mix_modules)
    set_bn_route(mixed, "adv")
    assert all(m.route == "adv" for m in mix_modules)
    x = torch.rand(2, 3, 16, 16)
    set_bn_route(mixed, "clean")
    assert torch.allclose(plain.eval()(x), mixed.eval()(x), atol=1e-5)  # clean route = the original network


def test_advprop_batch_attacks_on_the_adv_route_and_trains_on_mix(monkeypatch):
    torch.manual_seed(0)
    model = build_segmenter("unet-lite", 3, width=4, image_size=16, mixbn=True).train()
    seen = []
    from uel_helpers.segmentation import train as seg_train

    def spy(m, x, y, eps, steps, step):
        seen.append({mod.route for mod in m.modules() if isinstance(mod, MixBatchNorm2d)})
        return x + 0.01
    monkeypatch.setattr(seg_train, "bim_attack", spy)
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    out = adversarial_batch(model, "advprop", x, y, seg_settings("smoke"))
    assert seen == [{"adv"}]
    assert {m.route for m in model.modules() if isinstance(m, MixBatchNorm2d)} == {"mix"}
    assert torch.equal(out[:2], x[:2]) and torch.allclose(out[2:], x[2:] + 0.01)


# --- metrics ----------------------------------------------------------------------------------------------


def test_miou_on_a_hand_made_confusion_case():
    labels = torch.tensor([0, 0, 1, 1, 2, IGNORE])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    conf = confusion_matrix(pred, labels, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]  # the ignored pixel is not counted
    s = SegScores.from_confusion(conf)
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 0 / (1 + 0 - 0)
    assert s.iou == pytest.approx((1 / 3, 2 / 3, 0.0))
    assert s.miou == pytest.approx(1 / 3) and s.macc == pytest.approx(0.5) and s.allacc == pytest.approx(3 / 5)


def test_a_class_absent_from_both_maps_has_no_iou():
    s = SegScores.from_confusion(confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 3))
    assert math.isnan(s.iou[2]) and s.miou == 1.0


def test_evaluate_segmenter_respects_the_ignore_label(net, scenes):
    ignored = SegScenes(scenes.images, torch.full_like(scenes.labels, IGNORE), scenes.classes)
    assert math.isnan(evaluate_segmenter(net, ignored, device="cpu").allacc)
    s = evaluate_segmenter(net, scenes, "bim-2", batch_size=5, device="cpu")
    assert 0 <= s.miou <= 1 and 0 <= s.allacc <= 1


# --- synthetic scenes -------------------------------------------------------------------------------------


def test_scenes_are_deterministic_in_their_seed():
    a = make_scenes(shapes_source(), 6, size=16, seed=1)
    b = make_scenes(shapes_source(), 6, size=16, seed=1)
    c = make_scenes(shapes_source(), 6, size=16, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.instances, b.instances)
    assert not torch.equal(a.images, c.images)
    assert a.classes == ("background", "square", "bar") and a.images.dtype == torch.uint8


def test_scene_masks_match_the_pasted_objects(monkeypatch):
    """On a black background, the pixels that changed are exactly the labelled ones, and each visible object
    carries its class: a square object's mask fills its bounding box, a bar's is wider than tall."""
    monkeypatch.setattr(seg_data, "_background", lambda size, gen: torch.zeros(3, size, size))
    s = make_scenes(shapes_source(), 20, size=32, objects=(1, 2), scale=(0.5, 0.7), seed=0)
    painted = s.images.sum(1) > 0
    assert torch.equal(painted, s.labels > 0)
    assert torch.equal(s.labels > 0, s.instances > 0)
    for i in range(len(s)):
        for k in s.instances[i].unique().tolist()[1:]:
            assert len(s.labels[i][s.instances[i] == k].unique()) == 1  # one class per object
    lone = make_scenes(shapes_source(), 20, size=32, objects=(1, 1), scale=(0.5, 0.7), seed=0)
    for i in range(len(lone)):  # one object, nothing covers it: its mask has the source's shape
        where = lone.instances[i] == 1
        ys, xs = torch.nonzero(where, as_tuple=True)
        h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        if int(lone.labels[i][where][0]) == 2:  # the bar
            assert w > 2 * h
        else:  # the square; antialiased corners may drop below the threshold
            assert h * w - 4 <= int(where.sum()) <= h * w and abs(h - w) <= 1


def test_scenes_with_a_class_subset_relabel_in_order():
    s = make_scenes(shapes_source(), 8, size=16, seed=0, classes=(1,))
    assert s.classes == ("background", "bar") and set(s.labels.unique().tolist()) <= {0, 1}


def test_scenes_save_and_load(tmp_path, scenes):
    back = SegScenes.load(scenes.save(tmp_path / "s.npz"))
    assert torch.equal(back.images, scenes.images) and torch.equal(back.instances, scenes.instances)
    assert back.classes == scenes.classes


# --- PASCAL VOC (mocked: the dataset cannot be downloaded here) -------------------------------------------


class FakeVOC:
    """Stands in for torchvision.datasets.VOCSegmentation: 3 images of 50 x 70 with palette label maps."""

    def __init__(self, root, year, image_set, download):
        assert (year, image_set) == ("2012", "val")
        rng = np.random.default_rng(0)
        self.items = []
        for k in range(3):
            img = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
            lab = np.zeros((50, 70), dtype=np.uint8)
            lab[10:40, 20:60] = k + 1
            lab[10, 20:60] = 255  # VOC's object borders
            target = Image.fromarray(lab, mode="P")
            self.items.append((img, target))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_voc_loader_resizes_and_keeps_labels(monkeypatch):
    monkeypatch.setattr(seg_data, "_voc_dataset_class", lambda: FakeVOC)
    s = seg_data.load_voc_scenes("val", size=16, root="/nowhere")
    assert s.images.shape == (3, 3, 16, 16) and s.labels.shape == (3, 16, 16)
    assert s.classes == VOC_CLASSES
    for k in range(3):
        assert set(s.labels[k].unique().tolist()) <= {0, k + 1, IGNORE}  # nearest resampling: no blended labels
        assert (s.labels[k] == k + 1).any()


def test_voc_loader_offline_says_how_to_get_the_data(monkeypatch):
    class Missing:
        def __init__(self, *a, **k):
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.setattr(seg_data, "_voc_dataset_class", lambda: Missing)
    with pytest.raises(FileNotFoundError, match="download=True"):
        seg_data.load_voc_scenes("train", size=16, root="/nowhere")


# --- training ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["standard", "sat", "advprop"])
def test_each_training_runs_and_is_cached(scenes, method, tmp_path):
    s = seg_settings("smoke").with_(width=4, batch_size=4)
    a = train_segmenter(scenes, method, s, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    assert len(a.history.loss) == 1 and math.isfinite(a.history.loss[0])
    assert (any(isinstance(m, MixBatchNorm2d) for m in a.model.modules())) == (method == "advprop")
    assert all(m.route == "clean" for m in a.model.modules() if isinstance(m, MixBatchNorm2d))
    b = train_segmenter(scenes, method, s, seed=0, device="cpu", quiet=True, cache_root=tmp_path)  # from the cache
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    c = train_segmenter(scenes, method, s, seed=0, device="cpu", quiet=True, cache=False)  # retrained: same seed
    assert all(torch.equal(v, w) for v, w in zip(a.model.state_dict().values(), c.model.state_dict().values(),
                                                 strict=True))


# --- inpainting -------------------------------------------------------------------------------------------


def test_inpaint_keeps_the_budget_and_lowers_the_loss(net, scenes):
    x, y = scenes.to_float()[:4], scenes.labels[:4].long()
    mask = masks_on_objects(scenes.subset(range(4)), side=6, seed=0)
    s = InpaintSettings(steps=8, step=0.1)
    res = inpaint(net, x, y, mask, s, save_every=4, device="cpu")
    eps = scaled_eps(3, 16, 16)
    assert ((res.filled - res.corrupted).flatten(1).norm(dim=1) <= eps + 1e-4).all()
    assert res.filled.min() >= 0 and res.filled.max() <= 1
    assert sorted(res.iterates) == [0, 4, 8] and torch.equal(res.iterates[0], res.corrupted)
    from uel_helpers.segmentation import inpainting_loss

    with torch.no_grad():
        start = inpainting_loss(net, res.corrupted, y, res.corrupted, mask, s.lambda_r)
    assert (res.loss <= start + 1e-6).all()  # the lowest-loss iterate is kept
    assert torch.equal(res.corrupted[:, :, ~mask[0]][0], x[:, :, ~mask[0]][0])


def test_corrupt_fills_the_mask_with_the_mean_colour():
    x = torch.rand(2, 3, 8, 8)
    mask = square_mask(8, 2, 3, 4)[None].expand(2, 8, 8)
    out = corrupt(x, mask)
    assert torch.allclose(out[:, :, 2, 3], x.mean((2, 3)))
    assert torch.equal(out[:, :, 0, 0], x[:, :, 0, 0])


def test_region_scores_and_gradients(net, scenes):
    x = scenes.to_float()[:3]
    mask = square_mask(16, 4, 4, 6)[None].expand(3, 16, 16)
    assert torch.isclose(region_ssim(x, x, mask), torch.ones(3)).all()
    noisy = x.clone()
    noisy[:, :, 0, 0] = 1 - noisy[:, :, 0, 0]  # outside the mask: the region's PSNR is unchanged
    assert (region_psnr(noisy, x, mask) > 100).all()
    inside = x.clone()
    inside[:, :, 5, 5] += 0.1
    d = (inside.clamp(0, 1) - x)[:, :, 4:10, 4:10]  # the 6x6 square at (4, 4): PSNR = 10 log10(1 / MSE)
    assert torch.allclose(region_psnr(inside.clamp(0, 1), x, mask), 10 * torch.log10(1 / d.pow(2).mean((1, 2, 3))))
    assert (region_psnr(inside.clamp(0, 1), x, mask) < 100).all()
    g = input_gradients(net, x, scenes.labels[:3].long(), device="cpu")
    assert g.shape == x.shape and ((object_share(g, scenes.labels[:3]) >= 0) & (object_share(g, scenes.labels[:3])
                                                                                 <= 1)).all()


def test_relabel_object_changes_only_the_object():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 1:3, 1:3] = 1
    out = relabel_object(labels, labels == 1, 2)
    assert (out[labels == 1] == 2).all() and (out[labels == 0] == 0).all()


def test_compare_inpainting_scores_every_model_with_the_same_budget(net, scenes):
    sub = scenes.subset(range(3))
    mask = masks_on_objects(sub, side=6, seed=0)
    torch.manual_seed(1)
    judge = build_segmenter("psp-lite", 3, width=4, image_size=16).eval()
    out = compare_inpainting({"a": net}, sub, mask, InpaintSettings(steps=3), judge=judge, device="cpu")
    assert list(out) == ["corrupted", "original", "a"]
    assert (out["original"].psnr == 120).all() and torch.allclose(out["original"].ssim, torch.ones(3))
    direct = inpaint(net, sub.to_float(), sub.labels.long(), mask, InpaintSettings(steps=3), device="cpu").filled
    assert torch.equal(out["a"].images, direct)
    assert ((out["a"].judge >= 0) & (out["a"].judge <= 1)).all()
    with pytest.raises(ValueError, match="judge must be trained separately"):
        compare_inpainting({"a": net}, sub, mask, InpaintSettings(steps=1), judge=net, device="cpu")


def test_edit_targets_relabel_the_largest_object_inside_its_box(scenes):
    target, mask, new = edit_targets(scenes, seed=0)
    for i in range(len(scenes)):
        changed = target[i] != scenes.labels[i].long()
        assert changed.any() and (target[i][changed] == new[i]).all()
        assert mask[i][changed].all()  # every relabelled pixel lies in the box
        assert int(new[i]) != 0 and not (target[i][changed] == scenes.labels[i][changed].long()).any()
    again = edit_targets(scenes, seed=0)
    assert all(torch.equal(a, b) for a, b in zip((target, mask, new), again, strict=True))


def test_profile_scenes_builds_cached_synthetic_scenes(monkeypatch, tmp_path):
    from uel_helpers.segmentation import settings as seg_settings_module

    monkeypatch.setenv("UEL_CACHE", str(tmp_path))
    monkeypatch.setattr(seg_settings_module, "SCENE_PROFILES", {
        **seg_settings_module.SCENE_PROFILES,
        "smoke": dict(n_train=6, n_test=3, size=16, objects=(1, 1), scale=(0.5, 0.8), classes=None)})
    train, test, name = profile_scenes("smoke", "digits")
    assert (len(train), len(test), train.size, name) == (6, 3, 16, "digits scenes")
    assert not torch.equal(train.images[:3], test.images)  # other objects (test split) and another seed
    with pytest.raises(ValueError, match="dataset"):
        profile_scenes("smoke", "imagenet")


def test_explorer_views_and_render(net, scenes):
    views = inpainting_views({"a": net, "b": net}, scenes.subset(range(2)), sides=(4, 6),
                             settings=InpaintSettings(steps=4), saved=2, device="cpu")
    assert views.steps == (0, 2, 4) and views.iterates["a"].shape[:5] == (3, 2, 4, 2, 3)
    fig = render_view(views, image=1, position="centre", side=6, model="b", step=2)
    assert len(fig.axes) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(ValueError, match="image"):
        render_view(views, image=2)


# --- bad input: one case each, the message names the argument ------------------------------------------


def _bad_target(net, scenes):
    x = scenes.to_float()[:2]
    inpaint(net, x, scenes.labels[:2, :8].long(), masks_on_objects(scenes.subset(range(2)), 4), device="cpu")


def _bad_mask_size(net, scenes):
    x = scenes.to_float()[:2]
    inpaint(net, x, scenes.labels[:2].long(), torch.ones(2, 8, 8, dtype=torch.bool), device="cpu")


BAD = {
    "mask below the image": (lambda net, sc: square_mask(16, 12, 0, 6), ValueError, "outside.*top"),
    "mask left of the image": (lambda net, sc: square_mask(16, 0, -1, 4), ValueError, "outside.*left"),
    "mask of another size": (_bad_mask_size, ValueError, "mask must have the images' size"),
    "eps zero": (lambda net, sc: bim_attack(net, sc.to_float()[:1], sc.labels[:1], eps=0.0), ValueError, "eps"),
    "eps negative": (lambda net, sc: bim_attack(net, sc.to_float()[:1], sc.labels[:1], eps=-0.1), ValueError, "eps"),
    "label map of the wrong size (attack)": (lambda net, sc: bim_attack(net, sc.to_float()[:1], sc.labels[:1, :8]),
                                             ValueError, "labels must be a label map"),
    "label map of the wrong size (inpaint)": (_bad_target, ValueError, "target must be a label map"),
    "label map of the wrong size (scenes)": (lambda net, sc: SegScenes(sc.images, sc.labels[:, :8], sc.classes),
                                             ValueError, "labels must be a label map"),
    "label out of range": (lambda net, sc: SegScenes(sc.images, torch.full_like(sc.labels, 7), sc.classes),
                           ValueError, "labels must lie in"),
    "unknown model": (lambda net, sc: build_segmenter("pspnet-9000", 3), ValueError, "model must be one of"),
    "unknown model in settings": (lambda net, sc: seg_settings("smoke").with_(model="fcn"), ValueError, "model"),
    "unknown method": (lambda net, sc: train_segmenter(sc, "ddcat", seg_settings("smoke")), ValueError, "method"),
    "unknown attack": (lambda net, sc: evaluate_segmenter(net, sc, "fgsm"), ValueError, "attack"),
    "image side not a multiple of 8": (lambda net, sc: build_segmenter("unet-lite", 3, image_size=20), ValueError,
                                       "image_size"),
    "odd batch": (lambda net, sc: seg_settings("smoke").with_(batch_size=5), ValueError, "batch_size"),
    "mask not bool": (lambda net, sc: corrupt(sc.to_float()[:1], torch.ones(1, 16, 16)), TypeError, "mask"),
    "images outside [0, 1]": (lambda net, sc: region_psnr(2 * sc.to_float()[:1], sc.to_float()[:1],
                                                          torch.ones(1, 16, 16, dtype=torch.bool)),
                              ValueError, r"images must lie in \[0, 1\]"),
    "scores of different shapes": (lambda net, sc: region_ssim(sc.to_float()[:1], sc.to_float()[:2],
                                                               torch.ones(1, 16, 16, dtype=torch.bool)),
                                   ValueError, "same shape"),
    "judge label map of the wrong size": (lambda net, sc: judge_accuracy(net, sc.to_float()[:1], sc.labels[:1, :8],
                                                                         torch.ones(1, 16, 16, dtype=torch.bool)),
                                          ValueError, "target must be a label map"),
    "editing without two object classes": (lambda net, sc: edit_targets(SegScenes(sc.images, sc.labels.clamp(max=1),
                                                                                  ("bg", "a"))),
                                           ValueError, "at least 2 object classes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_a_clear_error(case, net, scenes):
    call, error, match = BAD[case]
    with pytest.raises(error, match=match):
        call(net, scenes)
