"""One training on several processes (uel_helpers.distributed): shards, the global batch, DDP's gradient average,
and the judge, D-VAE and SSL trainings launched under `torchrun --nproc_per_node 2` with gloo on CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from uel_helpers.cache import cache_dir, cached
from uel_helpers.distributed import context, local_batch, shard_indices
from uel_helpers.training import get_protocol

# The torchrun smoke training: the smoke protocol with a one-cycle schedule annealed to 0, so that the final epoch is
# not a snapshot of a constant-lr random walk (digits, 510 training images, batch 64 = 2 ranks x 32).
DDP_PROTOCOL = get_protocol("smoke", epochs=8, schedule="onecycle", lr=0.1, lr_end=0.0)
# Tolerance of "the same accuracy within noise" (measured 2026-12-01, 2 CPU cores): single-process runs of
# DDP_PROTOCOL over seeds 0-7 gave 0.898-0.933 final test accuracy (mean 0.915, std 0.011); 2-rank torchrun runs,
# seeds 0-2, gave 0.898, 0.884, 0.907 (mean 0.896). The 2-rank run is not the same draw as seed 0's single run (each
# rank has its own augmentation and order streams) and its BatchNorm normalises over 32 images per rank instead of
# 64 (noisier statistics: the ~0.02 lower mean above). So the difference is seed noise, sqrt(2) x 0.011 ~ 0.016 for
# two draws, plus that ~0.02 shift: 0.05 covers the shift and two standard deviations of the noise.
ACC_TOLERANCE = 0.05


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (510, 3), (7, 4), (1, 1), (3, 4)])
def test_shards_are_disjoint_and_cover_the_set(n, world):
    shards = [shard_indices(n, world, r, seed=3) for r in range(world)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))  # no index twice, none missing
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shards_follow_the_seed():
    assert torch.equal(shard_indices(100, 2, 0, seed=1), shard_indices(100, 2, 0, seed=1))
    assert not torch.equal(shard_indices(100, 2, 0, seed=1), shard_indices(100, 2, 0, seed=2))


BAD = [
    (lambda: local_batch(64, 3), ValueError, r"global batch and must be divisible .* use 63 or 66"),
    (lambda: shard_indices(10, 2, 2), ValueError, r"rank must be an integer in \[0, 1\]"),
    (lambda: context(torch.device("cpu"), True), ValueError, "ddp=True needs several processes started by torchrun"),
    (lambda: context(torch.device("cpu"), "yes"), TypeError, "ddp must be True or False"),
    (lambda: context(torch.device("cpu"), None, sync_bn=1), TypeError, "sync_bn must be True or False"),
]


@pytest.mark.parametrize("call, error, match", BAD, ids=["batch", "rank", "no-torchrun", "ddp-flag", "sync-bn"])
def test_bad_input(call, error, match, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(error, match=match):
        call()


def test_outside_torchrun_everything_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = context(torch.device("cpu"))
    assert not ctx.active and ctx.is_main and ctx.local_batch(64) == 64 and ctx.shard(5, 0).tolist() == [0, 1, 2, 3, 4]
    model = nn.Linear(2, 2)
    assert ctx.wrap(model) is model and ctx.all_reduce_sum([1.0, 2.0]) == [1.0, 2.0]


def test_only_rank_0_writes_the_cache(monkeypatch):
    def write(value, path):
        path.write_text(str(value))

    def read(path):
        return int(path.read_text())

    monkeypatch.setenv("RANK", "1")
    assert cached("x", {"a": 1}, lambda: 5, write, read, suffix=".txt") == 5
    assert not cache_dir().exists() or not any(cache_dir().rglob("*"))
    monkeypatch.setenv("RANK", "0")
    assert cached("x", {"a": 1}, lambda: 5, write, read, suffix=".txt") == 5
    assert len(list(cache_dir().rglob("*.txt"))) == 1


SCRIPT = textwrap.dedent('''
    """Run by torchrun: each rank trains (judge, D-VAE, SSL) and writes what it saw to OUT/rank<r>.json."""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    out, rank = sys.argv[1], int(os.environ["RANK"])
    os.environ["UEL_CACHE"] = os.path.join(out, f"cache-rank{rank}")  # one folder per rank: who wrote what
    from uel_helpers import distributed
    from uel_helpers.cache import cached
    from uel_helpers.data import load_dataset
    from uel_helpers.training import History, evaluate, get_protocol, train

    shards = []
    shard = distributed.DistContext.shard
    def recording(self, n, seed):
        idx = shard(self, n, seed)
        shards.append(idx.tolist())
        return idx
    distributed.DistContext.shard = recording

    # DDP's average of two half-batch gradients against the full-batch gradient (a model without BatchNorm)
    ctx = distributed.context(torch.device("cpu"))  # initialises the gloo process group from torchrun's variables
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    reference.load_state_dict(model.state_dict())
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    nn.functional.cross_entropy(reference(x), y).backward()  # the full batch, in this process alone
    half = slice(rank * 4, rank * 4 + 4)
    ddp = ctx.wrap(model)  # kept alive until backward: its hooks do the all-reduce
    nn.functional.cross_entropy(ddp(x[half]), y[half]).backward()  # this rank's half; DDP averages
    grad_error = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), reference.parameters()))
    grad_scale = max(float(q.grad.abs().max()) for q in reference.parameters())

    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    proto = get_protocol("smoke", epochs=8, schedule="onecycle", lr=0.1, lr_end=0.0, max_test=None)
    models = []
    def build():
        hist, net = train(tr, te, proto, seed=0, device="cpu", quiet=True, return_model=True)
        models.append(net)
        return hist
    hist = cached("runs", {"ddp-test": 1}, build, lambda h, p: h.save(p), History.load, suffix=".history")
    report = {"rank": rank, "world": distributed.world_size(), "grad_error": grad_error, "grad_scale": grad_scale,
              "train_loss": hist.train_loss,
              "train_acc": hist.train_acc, "test_acc": hist.test_acc, "ddp": hist.config.get("ddp"),
              "n_train": hist.config["n_train"], "shard": shards[0],
              "direct": evaluate(models[0], te, "cpu"), "n_test": len(te)}  # this rank's model, whole test set, alone

    from uel_helpers.defenses.dvae import train_dvae
    small = tr.take_per_class(20, seed=0)
    vae = train_dvae(small, 1.0, profile="smoke", epochs=2, seed=0, device="cpu", quiet=True)
    report["dvae_loss"] = vae.info["history"]["loss"]
    try:
        from uel_helpers.attribution.backbone import ssl_config_for_profile, train_ssl
        cfg = ssl_config_for_profile("smoke", method="simclr", batch_size=32, epochs=2)
        report["ssl_loss"] = train_ssl(small, cfg, seed=0, device="cpu", quiet=True).history.loss
    except ImportError:  # lightly (the attribution extra) not installed
        report["ssl_loss"] = None
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump(report, fh)
''')


@pytest.fixture(scope="module")
def torchrun_reports(tmp_path_factory):
    """Launch SCRIPT under `torchrun --standalone --nproc_per_node 2` (gloo on CPU) once; its two reports."""
    out = tmp_path_factory.mktemp("torchrun")
    script = out / "ddp_smoke.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "UEL_PROFILE"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(out)], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_ddp_average_of_two_half_batches_is_the_full_batch_gradient(torchrun_reports):
    """Each rank's loss is the mean over its half of the batch; DDP averages the two gradients: the gradient of the
    mean over the whole batch, hence the same learning rate for the same global batch whatever the number of ranks."""
    _, reports = torchrun_reports
    for r in reports:
        assert r["grad_scale"] > 1e-3 and r["grad_error"] <= 1e-6 * max(1.0, r["grad_scale"]), r


def test_torchrun_ranks_train_one_model_on_disjoint_shards(torchrun_reports):
    _, (r0, r1) = torchrun_reports
    assert r0["world"] == r1["world"] == 2
    assert r0["ddp"] == {"world_size": 2, "backend": "gloo", "global_batch": 64, "local_batch": 32, "sync_bn": False}
    assert set(r0["shard"]).isdisjoint(r1["shard"]) and sorted(r0["shard"] + r1["shard"]) == list(range(510))
    # every rank holds the gathered per-epoch numbers, and they are rank 0's model's
    for key in ("train_loss", "train_acc", "test_acc", "dvae_loss", "ssl_loss"):
        assert r0[key] == r1[key], key
    assert len(r0["dvae_loss"]) == 2  # the D-VAE trained its 2 epochs under DDP
    lightly = importlib.util.find_spec("lightly") is not None
    assert (r0["ssl_loss"] is not None and len(r0["ssl_loss"]) == 2) == lightly  # the SSL backbone, where installed
    # rank 0's model scored alone on the whole test set: the gathered accuracy (up to one image, for the float
    # sums of a 450-image batch against two 225-image ones)
    assert abs(r0["direct"] - r0["test_acc"][-1]) <= 1 / r0["n_test"] + 1e-12


def test_torchrun_only_rank_0_writes_the_cache(torchrun_reports):
    out, _ = torchrun_reports
    written = {p.parent.name for p in (out / "cache-rank0").rglob("*") if p.is_file()}
    assert {"runs", "dvae-model"} <= written
    assert not (out / "cache-rank1").exists() or not [p for p in (out / "cache-rank1").rglob("*") if p.is_file()]


def test_torchrun_accuracy_equals_one_process_with_the_same_global_batch(torchrun_reports):
    from uel_helpers.data import load_dataset
    from uel_helpers.training import train

    _, (r0, _) = torchrun_reports
    single = train(load_dataset("digits", "train"), load_dataset("digits", "test"),
                   DDP_PROTOCOL.with_(max_test=None), seed=0, device="cpu", quiet=True)
    assert len(single.test_acc) == len(r0["test_acc"]) == DDP_PROTOCOL.epochs
    assert abs(single.test_acc[-1] - r0["test_acc"][-1]) <= ACC_TOLERANCE, (single.test_acc, r0["test_acc"])
