"""Tests for Deep Feature Reweighting (uel_helpers/dfr.py): tiny synthetic data, CPU, seconds."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from uel_helpers.data import synthetic_dataset
from uel_helpers.dfr import dfr_over_epochs, last_linear, reweight_last_layer, snapshot_every_epoch
from uel_helpers.training import Normalize, evaluate, get_protocol, train

PROTO = get_protocol("smoke", epochs=20, batch_size=32)
NO_AUG = get_protocol("smoke", crop_padding=0, flip=False)


@pytest.fixture(scope="module")
def data():
    full = synthetic_dataset(n_per_class=80, num_classes=4, channels=1, size=8, noise=0.15, seed=0)
    train_set, test_set = full.split(0.5, seed=0)
    return train_set, test_set, train_set.take_per_class(10)


@pytest.fixture(scope="module")
def judge(data):
    """A SmallCNN trained to high clean accuracy: its features are informative."""
    train_set, test_set, _ = data
    hist, net = train(train_set, test_set, PROTO, device="cpu", quiet=True, return_model=True)
    return hist, net


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _scrambled(net: nn.Module) -> nn.Module:
    """The same network with its head's classes shifted cyclically: every correct prediction becomes wrong."""
    out = copy.deepcopy(net)
    _, head = last_linear(out)
    with torch.no_grad():
        head.weight.copy_(head.weight.roll(1, 0))
        head.bias.copy_(head.bias.roll(1, 0))
    return out


def test_last_linear_finds_the_head_inside_the_trainers_wrapper(judge):
    _, net = judge
    assert isinstance(net, nn.Sequential) and isinstance(net[0], Normalize)
    name, head = last_linear(net)
    assert name == "1.head" and head is net[1].head
    with pytest.raises(ValueError, match="has none"):
        last_linear(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()))
    with pytest.raises(TypeError, match="nn.Module"):
        last_linear("net")


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_dfr_restores_a_scrambled_head(data, judge, bn_mode):
    """Features intact, head's classes shifted: DFR relearns a head as good as the one it replaces.

    By construction acc_before <= 1 - acc_orig (a cyclic shift turns each right answer wrong), and the original
    head is one solution of the convex problem DFR solves (exactly so with frozen BN); tolerance: 10 points.
    """
    train_set, test_set, subset = data
    hist, net = judge
    acc_orig = evaluate(net, test_set, "cpu")
    assert acc_orig >= 0.9, hist.test_acc  # the premise: an informative judge
    scrambled = _scrambled(net)
    res = reweight_last_layer(scrambled, subset, test_set, NO_AUG, bn_mode=bn_mode, device="cpu")
    assert res.acc_before <= 1 - acc_orig + 1e-9
    assert res.acc_after >= acc_orig - 0.10
    assert res.bn_mode == bn_mode and res.head == "1.head" and len(res.losses) == 15  # 1 batch x 15 epochs
    assert evaluate(res.model, test_set, "cpu") == res.acc_after


def test_only_the_head_changes_and_the_callers_model_is_untouched(data, judge):
    _, test_set, subset = data
    _, net = judge
    scrambled = _scrambled(net)
    before = _state(scrambled)
    flags = {n: p.requires_grad for n, p in scrambled.named_parameters()}
    scrambled.train()
    for bn_mode in ("eval", "train"):
        res = reweight_last_layer(scrambled, subset, test_set, PROTO, bn_mode=bn_mode, epochs=2, device="cpu")
        after = _state(res.model)
        params = {n for n, _ in res.model.named_parameters()}
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert {"1.head.weight", "1.head.bias"} <= changed
        assert not (changed & params) - {"1.head.weight", "1.head.bias"}  # no other parameter moved
        buffers = {k for k in changed if k not in params}
        if bn_mode == "eval":
            assert not buffers  # a pure probe: BN running statistics unchanged
        else:
            assert any(k.endswith("running_mean") for k in buffers)  # re-estimated on the clean data
            assert any(k.endswith("num_batches_tracked") for k in buffers)
        assert {n: p.requires_grad for n, p in res.model.named_parameters()} == flags
        assert not res.model.training
    assert all(torch.equal(v, scrambled.state_dict()[k]) for k, v in before.items())  # caller's model untouched
    assert {n: p.requires_grad for n, p in scrambled.named_parameters()} == flags and scrambled.training


_OTHER = synthetic_dataset(n_per_class=2, num_classes=5, channels=1, size=8)

# (call on (net, clean subset, test set), expected exception, message pattern); one case, one failure
BAD_ARGUMENTS = {
    "bn_mode='frozen'": (lambda net, sub, test: reweight_last_layer(net, sub, test, bn_mode="frozen"), ValueError,
                         "bn_mode must be one of"),
    "no linear layer": (lambda net, sub, test: reweight_last_layer(nn.Sequential(nn.Flatten()), sub, test),
                        ValueError, "has none"),
    "epochs=0": (lambda net, sub, test: reweight_last_layer(net, sub, test, epochs=0), ValueError,
                 "epochs must be an integer >= 1"),
    "lr=0": (lambda net, sub, test: reweight_last_layer(net, sub, test, lr=0), ValueError,
             r"lr must lie in \(0, inf\)"),
    "clean_subset tensor": (lambda net, sub, test: reweight_last_layer(net, sub.images, test), TypeError,
                            "clean_subset must be an ImageSet"),
    "classes differ": (lambda net, sub, test: reweight_last_layer(net, _OTHER, test), ValueError, "must match"),
    "head vs classes": (lambda net, sub, test: reweight_last_layer(net, _OTHER, _OTHER), ValueError,
                        "4 outputs but the data has 5"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_ARGUMENTS.values()), ids=list(BAD_ARGUMENTS))
def test_bad_arguments(data, judge, call, error, match):
    _, test_set, subset = data
    _, net = judge
    with pytest.raises(error, match=match):
        call(net, subset, test_set)


def test_snapshots_are_the_trainers_model(data):
    train_set, test_set, _ = data
    proto = get_protocol("smoke", epochs=3, batch_size=32)
    hist, snaps, untrained = snapshot_every_epoch(train_set, test_set, proto, epochs=[1, 3], device="cpu", quiet=True)
    ref_hist, ref_net = train(train_set, test_set, proto, device="cpu", quiet=True, return_model=True)
    assert hist.test_acc == ref_hist.test_acc  # built and seeded as train() builds its own model
    assert sorted(snaps) == [1, 3]
    assert all(isinstance(m, nn.Sequential) and isinstance(m[0], Normalize) for m in (*snaps.values(), untrained))
    ref = ref_net.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in snaps[3].state_dict().items())
    assert not torch.equal(snaps[1].state_dict()["1.head.weight"], ref["1.head.weight"])
    assert evaluate(snaps[3], test_set, "cpu") == hist.test_acc[-1]
    with pytest.raises(ValueError, match=r"ints in \[1, 3\]"):
        snapshot_every_epoch(train_set, test_set, proto, epochs=[4])


def test_dfr_over_epochs(data):
    train_set, test_set, subset = data
    proto = get_protocol("smoke", epochs=2, batch_size=32)
    curve = dfr_over_epochs(train_set, subset, test_set, proto, dfr_epochs=2, device="cpu", quiet=True)
    assert curve.epochs == [1, 2] and len(curve.acc_before) == len(curve.acc_after) == 2
    assert curve.acc_before == curve.history.test_acc  # the snapshot's accuracy is the epoch's test accuracy
    assert 0 <= curve.random_init_after <= 1 and curve.bn_mode == "train"
    with pytest.raises(ValueError, match="bn_mode"):
        dfr_over_epochs(train_set, subset, test_set, proto, bn_mode="probe")
