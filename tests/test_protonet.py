"""Unit tests for uel_helpers.protonet: sampler, head, encoder/decoder shapes, the alpha path, training, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uel_helpers.data import synthetic_dataset
from uel_helpers.protonet import (
    AutoProtoNet,
    EpisodeSampler,
    class_prototypes,
    color_jitter,
    decode_embeddings,
    decode_prototypes,
    evaluate_episodes,
    few_shot_split,
    interpolate,
    lr_factor,
    make_refinement_task,
    mirror_output_paddings,
    optimise_prototype_image,
    protonet_logits,
    protonet_settings,
    refine,
    refinement_path,
    train_protonet,
)

TINY = protonet_settings("smoke").with_(epochs=2, steps_per_epoch=2, train_way=3, train_shot=2, train_query=2,
                                        test_way=3, test_shot=2, test_query=2, test_episodes=4)


@pytest.fixture
def small16():
    """6 classes x 12 images, 1 channel, 16 px (the smallest size the decoder mirrors)."""
    return synthetic_dataset(n_per_class=12, num_classes=6, channels=1, size=16, seed=3)


# --- sampler ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("way,shot,query,batch", [(5, 1, 3, 1), (3, 5, 4, 7), (6, 2, 10, 2)])
def test_sampler_counts_disjoint_and_own_classes(way, shot, query, batch):
    labels = torch.arange(8).repeat_interleave(12)[torch.randperm(96, generator=torch.Generator().manual_seed(0))]
    split = [0, 2, 3, 5, 6, 7]
    ep = EpisodeSampler(labels, way, shot, query, classes=split, seed=1).sample(batch)
    assert ep.support.shape == (batch, way, shot) and ep.query.shape == (batch, way, query)
    assert ep.classes.shape == (batch, way)
    for b in range(batch):
        assert len(set(ep.classes[b].tolist())) == way and set(ep.classes[b].tolist()) <= set(split)
        s, q = ep.support[b].reshape(-1).tolist(), ep.query[b].reshape(-1).tolist()
        assert len(set(s)) == len(s) and len(set(q)) == len(q) and not set(s) & set(q)
        for j in range(way):  # every image of position j is of class classes[b, j]
            assert (labels[ep.support[b, j]] == ep.classes[b, j]).all()
            assert (labels[ep.query[b, j]] == ep.classes[b, j]).all()


def test_sampler_is_seeded_and_uses_every_image():
    labels = torch.arange(3).repeat_interleave(4)
    a = EpisodeSampler(labels, 3, 1, 3, seed=5).sample(50)
    b = EpisodeSampler(labels, 3, 1, 3, seed=5).sample(50)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    seen = set(a.support.reshape(-1).tolist()) | set(a.query.reshape(-1).tolist())
    assert seen == set(range(12))


@pytest.mark.parametrize("kwargs,match", [
    (dict(way=7, shot=1, query=1), "way=7 needs at least 7 classes"),
    (dict(way=2, shot=8, query=5), "shot \\+ query = 13 .* only 12"),
    (dict(way=2, shot=0, query=5), "shot must be an int >= 1"),
    (dict(way=2, shot=1, query=1, classes=[0, 9]), "classes \\[9\\] have no images"),
])
def test_sampler_bad_input(kwargs, match):
    labels = torch.arange(6).repeat_interleave(12)
    with pytest.raises(ValueError, match=match):
        EpisodeSampler(labels, **kwargs)


# --- head ------------------------------------------------------------------------------------------------------

def test_head_equals_formula_on_a_hand_example():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    protos = class_prototypes(support, labels, 2)
    assert torch.equal(protos, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    q = torch.tensor([[1.0, 1.0]])
    # ||q - c0||^2 = 1, ||q - c1||^2 = 1 + 4 = 5; d = 2; scale 3: logits = -3 * [1, 5] / 2
    assert torch.allclose(protonet_logits(q, protos, 3.0), torch.tensor([[-1.5, -7.5]]))
    # batched form agrees with the unbatched one
    batched = protonet_logits(q[None].repeat(2, 1, 1), protos[None].repeat(2, 1, 1), 3.0)
    assert torch.allclose(batched[1], torch.tensor([[-1.5, -7.5]]))


def test_prototypes_need_every_class():
    with pytest.raises(ValueError, match="every class needs >= 1 shot"):
        class_prototypes(torch.zeros(2, 3), torch.tensor([0, 0]), 2)


# --- network ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,channels,dim", [(28, 1, 64), (32, 3, 256), (84, 3, 1600), ((40, 33), 1, 256)])
def test_decoder_output_shape_equals_input_shape(size, channels, dim):
    torch.manual_seed(0)
    model = AutoProtoNet(channels, size).eval()
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.rand(2, channels, h, w)
    e = model.embed(x)
    assert e.shape == (2, dim)
    out = model.decode(e)
    assert out.shape == x.shape and bool((out >= 0).all())


def test_mirror_rule_gives_the_papers_decoders():
    assert mirror_output_paddings(32) == [(0, 0)] * 4
    assert mirror_output_paddings(84) == [(0, 0), (1, 1), (0, 0), (0, 0)]  # output_padding 1 in block 2 only


@pytest.mark.parametrize("size", [8, 15, (16, 12)])
def test_sizes_the_decoder_cannot_mirror(size):
    with pytest.raises(ValueError, match="sides >= 16 px.*resize explicitly"):
        AutoProtoNet(1, size)


def test_encoder_init_does_not_depend_on_the_decoder():
    torch.manual_seed(4)
    a = AutoProtoNet(1, 16, decoder=True)
    torch.manual_seed(4)
    b = AutoProtoNet(1, 16, decoder=False)
    for (ka, va), (kb, vb) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="no decoder"):
        b.decode(torch.zeros(1, b.embedding_dim))


# --- the alpha path ---------------------------------------------------------------------------------------------

def test_interpolate_ends_are_the_old_prototype_and_the_exemplar():
    c, e = torch.randn(256), torch.randn(256)
    path = interpolate(c, e, [0.0, 0.3, 1.0])
    assert torch.equal(path[0], c) and torch.equal(path[2], e)
    assert torch.allclose(path[1], 0.7 * c + 0.3 * e, atol=1e-6)
    protos = torch.randn(5, 256)
    r0, r1 = refine(protos, 2, 0.0, e), refine(protos, 2, 1.0, e)
    assert torch.equal(r0, protos) and torch.equal(r1[2], e)
    assert torch.equal(r1[[0, 1, 3, 4]], protos[[0, 1, 3, 4]])


@pytest.mark.parametrize("call,match", [
    (lambda: interpolate(torch.zeros(3), torch.zeros(3), [1.5]), "in \\[0, 1\\]"),
    (lambda: interpolate(torch.zeros(3), torch.zeros(4)), "same size"),
    (lambda: refine(torch.zeros(2, 3), 2, 0.5, torch.zeros(3)), "k must be a class index in 0..1"),
])
def test_path_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- training, evaluation, decoding -----------------------------------------------------------------------------

def test_lr_schedule_is_the_papers():
    s = protonet_settings("paper")
    assert [lr_factor(s, e) for e in (1, 19, 20, 39, 40, 49, 50, 60)] == [1.0, 1.0, 0.06, 0.06, 0.012, 0.012,
                                                                          0.0024, 0.0024]
    assert (s.train_way, s.train_shot, s.train_query, s.episodes_per_step, s.steps_per_epoch) == (20, 5, 15, 8, 1000)


def test_color_jitter_stays_in_range_and_zero_is_identity():
    x = torch.rand(6, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    y = color_jitter(x, 0.4, g)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1 and not torch.equal(x, y)
    assert torch.equal(color_jitter(x, 0.0, g), x)


def test_train_caches_and_resumes_bit_for_bit(small16, monkeypatch, tmp_path):
    ref = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache=False)
    assert len(ref.history.loss) == 2 and all(np.isfinite(ref.history.loss))
    from uel_helpers.protonet import training as pn  # train_protonet's module: patch what it calls

    real = pn.lr_factor

    def crash_in_epoch_2(settings, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(settings, epoch)

    monkeypatch.setattr(pn, "lr_factor", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    assert list(tmp_path.rglob("*.partial.pt"))
    monkeypatch.setattr(pn, "lr_factor", real)
    resumed = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert not list(tmp_path.rglob("*.partial.pt"))
    monkeypatch.setattr(pn, "_episode_loss", lambda *a, **k: pytest.fail("retrained instead of loading the cache"))
    again = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    assert again.history.loss == resumed.history.loss


def test_protonet_and_autoprotonet_share_schedule_and_evaluate(small16):
    auto = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache=False)
    plain = train_protonet(small16, TINY.with_(lambda_r=0.0), seed=0, device="cpu", quiet=True, cache=False)
    assert auto.name == "AutoProtoNet" and plain.name == "ProtoNet" and plain.model.decoder is None
    assert auto.history.mse[0] > 0 and plain.history.mse == [0.0, 0.0]
    acc = evaluate_episodes(auto, small16, 3, 2, 2, episodes=7, seed=0, device="cpu", batch=3)
    assert len(acc.accs) == 7 and 0 <= acc.mean <= 1 and acc.ci95 >= 0 and "7 episodes" in str(acc)
    with pytest.raises(ValueError, match="way=9"):
        evaluate_episodes(auto, small16, 9, 1, 1, episodes=1, device="cpu")


def test_validation_keeps_the_best_epoch(small16):
    train, val = few_shot_split(small16, ["class0", "class1", "class2"]), few_shot_split(small16, ["class3", "class4",
                                                                                                  "class5"])
    r = train_protonet(train, TINY.with_(val_episodes=3), val_set=val, seed=0, device="cpu", quiet=True, cache=False)
    assert len(r.history.val_acc) == 2 and r.history.best_epoch == 1 + int(np.argmax(r.history.val_acc))


def test_few_shot_split_relabels_and_rejects_unknown_names(small16):
    sub = few_shot_split(small16, ["class4", "class1"])
    assert sub.classes == ("class4", "class1") and len(sub) == 24
    assert torch.equal(sub.images[sub.labels == 0], small16.images[small16.labels == 4])
    with pytest.raises(ValueError, match="not classes of"):
        few_shot_split(small16, ["cat"])


def test_decoding_path_and_refinement_task(small16):
    auto = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache=False)
    sup = small16.images[:6]
    protos, imgs = decode_prototypes(auto, sup, torch.tensor([0, 0, 1, 1, 2, 2]), 3)
    assert protos.shape == (3, auto.model.embedding_dim) and imgs.shape == (3, 1, 16, 16)
    assert torch.allclose(decode_embeddings(auto, protos), imgs)
    task = make_refinement_task(small16, way=4, shot=1, query=3, n_exemplars=2, bad_class=1, seed=2)
    assert task.support.shape == (4, 1, 1, 16, 16) and task.query.shape == (12, 1, 16, 16)
    assert int(task.support[1, 0].float().sum()) < int(task.clean_support[1, 0].float().sum())  # occluded
    assert torch.equal(task.support[0], task.clean_support[0])
    path = refinement_path(auto, task, exemplar=1)
    assert path.decoded_path.shape == (11, 1, 16, 16) and len(path.accuracy) == 11
    assert torch.equal(path.path[0], path.prototypes[1]) and torch.equal(path.path[-1], path.exemplar)
    assert path.accuracy_at(0.7) == pytest.approx(path.accuracy[7])
    with pytest.raises(ValueError, match="exemplar must be in 0..1"):
        refinement_path(auto, task, exemplar=2)
    with pytest.raises(ValueError, match="corruption must be one of"):
        make_refinement_task(small16, corruption="blur")


def test_adam_tv_image_moves_towards_the_prototype(small16):
    auto = train_protonet(small16, TINY, seed=0, device="cpu", quiet=True, cache=False)
    target = decode_prototypes(auto, small16.images[:2], torch.tensor([0, 0]), 1)[0][0]
    from uel_helpers.protonet import embed_images

    start = float((embed_images(auto, torch.zeros(1, 1, 16, 16))[0] - target).norm())
    x = optimise_prototype_image(auto, target, steps=40, lr=0.05)
    assert x.shape == (1, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert float((embed_images(auto, x[None])[0] - target).norm()) < start
    with pytest.raises(ValueError, match="prototype must have"):
        optimise_prototype_image(auto, torch.zeros(3), steps=1)
