"""Attack × defense runs: make the poison, apply the defense, train the judge, read its accuracy.

`run_experiment(attack, defense, dataset, protocol, seeds)` is the one function the notebooks and
`uel matrix` call. Every expensive step is cached on disk by its configuration (the poison by
`make_poison`, the purified training set and each training run here), so re-running a notebook or a
matrix reuses finished work and an interrupted matrix resumes at the first unfinished run.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field

from .cache import cached, tensor_fingerprint
from .checks import check_bool, check_count, check_seed
from .data import ImageSet, load_dataset, pad, to_rgb
from .defenses import REGISTRY as DEFENSES
from .defenses import apply_defense, get_defense
from .device import pick_device
from .poisons import make_poison
from .poisons.base import dataset_fingerprint
from .profiles import resolve_profile
from .training import History, Protocol, get_protocol, train

CACHE_VERSION = 1


@dataclass(frozen=True)
class DataSpec:
    """Which data an experiment runs on: a dataset name, a class-balanced subset and an optional RGB view."""

    name: str = "fashion-mnist"
    n_per_class: int | None = None  # None = the whole training split
    as_rgb: bool = False  # repeat a grayscale channel 3x (the attacks were designed for colour images)
    subset_seed: int = 0
    pad_to: int | None = None  # zero-pad to pad_to x pad_to (e.g. Fashion-MNIST to CIFAR's 32; never crops)

    def __post_init__(self) -> None:  # bad fields fail here, not deep inside a loader later
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"DataSpec: name must be a dataset name such as 'fashion-mnist', got {self.name!r}")
        if self.n_per_class is not None:
            check_count(self.n_per_class, "n_per_class", "DataSpec")
        if self.pad_to is not None:
            check_count(self.pad_to, "pad_to", "DataSpec")
        check_bool(self.as_rgb, "as_rgb", "DataSpec")
        check_seed(self.subset_seed, "subset_seed", "DataSpec")

    def load(self) -> tuple[ImageSet, ImageSet]:
        """The (train, test) ImageSets this spec names."""
        train_set, test_set = load_dataset(self.name, "train"), load_dataset(self.name, "test")
        if self.n_per_class is not None:
            train_set = train_set.take_per_class(self.n_per_class, seed=self.subset_seed)
        if self.pad_to is not None:
            train_set, test_set = pad(train_set, self.pad_to), pad(test_set, self.pad_to)
        if self.as_rgb:
            train_set, test_set = to_rgb(train_set), to_rgb(test_set)
        return train_set, test_set

    @property
    def label(self) -> str:
        size = "all" if self.n_per_class is None else f"{self.n_per_class}/class"
        padded = f" padded to {self.pad_to}x{self.pad_to}" if self.pad_to is not None else ""
        return f"{self.name}{padded}{' as RGB' if self.as_rgb else ''} ({size})"


@dataclass
class Result:
    """Clean test accuracy of the judge trained on (attack, defense), per seed and epoch, with its baseline."""

    attack: str
    defense: str
    dataset: str
    protocol: str
    seeds: list[int]
    reading: str  # "final" or "peak": which number `accuracy` reports (early stopping reads the peak)
    test_acc: list[list[float]]  # [seed][epoch]
    train_loss: list[list[float]]
    train_acc: list[list[float]]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step (0 when read from cache)
    clean: Result | None = None  # the same protocol on clean data, no defense

    @property
    def final(self) -> list[float]:
        return [acc[-1] for acc in self.test_acc]

    @property
    def peak(self) -> list[float]:
        return [max(acc) for acc in self.test_acc]

    @property
    def peak_epoch(self) -> list[int]:
        return [1 + max(range(len(acc)), key=lambda i: (acc[i], -i)) for acc in self.test_acc]

    @property
    def accuracy(self) -> list[float]:
        """The reported accuracy per seed: final, or peak for a `reading="peak"` defense."""
        return self.peak if self.reading == "peak" else self.final

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracy) if len(self.accuracy) > 1 else 0.0

    def summary(self) -> dict:
        """One flat row (for tables, CSV and JSON)."""
        row = {"attack": self.attack, "defense": self.defense, "dataset": self.dataset, "protocol": self.protocol,
               "seeds": len(self.seeds), "reading": self.reading, "accuracy": self.mean, "std": self.std,
               "final": statistics.fmean(self.final), "peak": statistics.fmean(self.peak),
               "peak_epoch": statistics.fmean(self.peak_epoch), "seconds": sum(self.seconds.values()),
               "epochs": statistics.fmean(len(acc) for acc in self.test_acc),
               "train_acc": statistics.fmean(acc[-1] for acc in self.train_acc) if all(self.train_acc) else None}
        if self.clean is not None:
            # read the baseline the same way as the row (a peak row beside a clean peak, not a clean final)
            row["clean"] = self.clean.mean if self.clean.reading == self.reading else statistics.fmean(
                self.clean.peak if self.reading == "peak" else self.clean.final)
        return row

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clean"] = None if self.clean is None else self.clean.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        clean = None if d.get("clean") is None else cls.from_dict(d["clean"])
        return cls(**{**d, "clean": clean})


def check_seeds(seeds, who: str) -> list[int]:
    """`seeds`: a count n >= 1 (seeds 0..n-1) or a non-empty list of seeds; returns the list."""
    if isinstance(seeds, (list, tuple)):
        if not seeds:
            raise ValueError(f"{who}: seeds must be a count >= 1 or a non-empty list of seeds, got {seeds!r}")
        return [check_seed(s, f"seeds[{i}]", who) for i, s in enumerate(seeds)]
    return list(range(check_count(seeds, "seeds (a count, or a list of seeds)", who)))


def _protocol_name(protocol: Protocol) -> str:
    return protocol.name


def _train_cached(train_set: ImageSet, test_set: ImageSet, protocol: Protocol, seed: int, device, quiet: bool,
                  cache: bool) -> tuple[History, float]:
    """One judge training, cached by (data, protocol, seed, device type); returns it and its wall time."""
    config = {"train": dataset_fingerprint(train_set), "test": dataset_fingerprint(test_set),
              "protocol": protocol.to_dict(), "seed": seed, "device": device.type, "version": CACHE_VERSION}
    t0 = time.perf_counter()
    hist = cached("runs", config, build=lambda: train(train_set, test_set, protocol, seed=seed, device=device,
                                                        quiet=quiet),
                  save=lambda h, path: h.save(path), load=History.load, suffix=".history", enabled=cache)
    return hist, time.perf_counter() - t0


def _defended(defense: str, poisoned: ImageSet, protocol: Protocol, params: dict,
              cache: bool) -> tuple[ImageSet, Protocol]:
    """The training set after the defense (purified sets cached) and the protocol it trains with."""
    spec = get_defense(defense)
    if spec.kind != "purify":
        return apply_defense(defense, poisoned, protocol, **params)
    # The profile is part of the key: learned purifiers (D-VAE) take their size from it.
    config = {"defense": defense, "params": params, "data": dataset_fingerprint(poisoned),
              "profile": resolve_profile(None), "version": CACHE_VERSION}
    purified = cached("purified", config, build=lambda: apply_defense(defense, poisoned, protocol, **params)[0],
                      save=lambda ds, path: ds.save(path), load=ImageSet.load, enabled=cache)
    return purified, protocol


def run_experiment(
    attack: str,
    defense: str = "none",
    dataset: str | DataSpec | tuple[ImageSet, ImageSet] = "fashion-mnist",
    protocol: str | Protocol | None = None,
    seeds: int | list[int] = 1,
    *,
    attack_params: dict | None = None,
    defense_params: dict | None = None,
    poison_seed: int = 0,
    baseline: bool = True,
    device: str | None = "auto",
    cache: bool = True,
    quiet: bool = True,
) -> Result:
    """One attack x defense run: train the judge on `attack`'s poison after `defense`, for each seed; report clean
    test accuracy. (`run_matrix` runs a grid of these; `training.evaluate` is a model's accuracy on a set.)

    attack: a registered attack name, or "none" for clean training. defense: a registered defense.
    dataset: a name, a `DataSpec` (subset, RGB view), or a (train, test) pair of ImageSets.
    seeds: a count (seeds 0..n-1) or a list; the poison itself is made once, with `poison_seed`.
    The result carries per-epoch curves, final and peak accuracy per seed, the wall time of each step,
    and (with `baseline=True`) the clean baseline under the same protocol without a defense.
    """
    seed_list = check_seeds(seeds, "run_experiment")
    poison_seed = check_seed(poison_seed, "poison_seed", "run_experiment")
    for flag, value in (("baseline", baseline), ("cache", cache), ("quiet", quiet)):
        check_bool(value, flag, "run_experiment")
    for what, value in (("attack_params", attack_params), ("defense_params", defense_params)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"run_experiment: {what} must be a dict of parameter names to values or None, "
                            f"got {value!r}")
    proto = get_protocol(protocol)
    dev = pick_device(device)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    if isinstance(dataset, tuple):
        if len(dataset) != 2 or not all(isinstance(d, ImageSet) for d in dataset):
            raise TypeError("dataset must be a name, a DataSpec, or a (train, test) pair of ImageSets")
        train_set, test_set = dataset
        label = f"{train_set.name} ({len(train_set)} images, {tensor_fingerprint(train_set.images)[:8]})"
    else:
        spec = DataSpec(dataset) if isinstance(dataset, str) else dataset
        if not isinstance(spec, DataSpec):
            raise TypeError(f"dataset must be a name, a DataSpec, or a (train, test) pair, got {type(dataset)}")
        train_set, test_set = spec.load()
        label = spec.label
    seconds["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if attack == "none":
        poisoned = train_set
    else:
        poisoned = make_poison(attack, train_set, seed=poison_seed, cache=cache, device=device, quiet=quiet,
                               **(attack_params or {})).poisoned
    seconds["poison"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    defended, run_proto = _defended(defense, poisoned, proto, dict(defense_params or {}), cache)
    seconds["defense"] = time.perf_counter() - t0

    curves, train_seconds = [], 0.0
    for seed in seed_list:
        hist, took = _train_cached(defended, test_set, run_proto, seed, dev, quiet, cache)
        curves.append(hist)
        train_seconds += took
    seconds["train"] = train_seconds

    clean = None
    if baseline and not (attack == "none" and defense == "none"):
        clean = run_experiment("none", "none", (train_set, test_set), proto, seed_list, baseline=False,
                               device=device, cache=cache, quiet=quiet)
        clean.dataset = label
    return Result(
        attack=attack, defense=defense, dataset=label, protocol=_protocol_name(proto), seeds=seed_list,
        reading=get_defense(defense).reading, test_acc=[h.test_acc for h in curves],
        train_loss=[h.train_loss for h in curves], train_acc=[h.train_acc for h in curves], seconds=seconds,
        clean=clean,
    )


def evaluate(*args, **kwargs) -> Result:
    """Deprecated name of `run_experiment` (it clashed with `training.evaluate`, a model's accuracy on a set)."""
    warnings.warn("uel_helpers.experiments.evaluate is now run_experiment", DeprecationWarning, stacklevel=2)
    return run_experiment(*args, **kwargs)


def format_results(results: list[Result]) -> str:
    """A plain-text table: attack, defense, accuracy (mean ± std over seeds), final, peak, clean, seconds."""
    head = (f"{'attack':24s} {'defense':18s} {'acc %':>13s} {'final':>6s} {'peak':>6s} {'@ep':>5s} "
            f"{'clean':>7s} {'s':>7s}")
    lines = [head, "-" * len(head)]
    for r in results:
        s = r.summary()
        clean = f"{100 * s['clean']:6.2f}" if "clean" in s else "     -"
        acc = f"{100 * s['accuracy']:6.2f} ± {100 * s['std']:4.2f}"
        lines.append(f"{r.attack:24s} {r.defense:18s} {acc:>13s} {100 * s['final']:6.2f} {100 * s['peak']:6.2f} "
                     f"{s['peak_epoch']:5.1f} {clean:>7s} {s['seconds']:7.1f}")
    return "\n".join(lines)


CONTROL = "random-noise-samplewise"  # the judge's control row: noise without class structure, the same budget


def run_matrix(
    attacks: list[str],
    defenses: list[str],
    dataset: str | DataSpec | tuple[ImageSet, ImageSet] = "fashion-mnist",
    protocol: str | Protocol | None = None,
    seeds: int | list[int] = 1,
    *,
    include_clean: bool = True,
    include_control: bool = True,
    on_result=None,
    device: str | None = "auto",
    cache: bool = True,
    quiet: bool = True,
) -> list[Result]:
    """Evaluate every (attack, defense) cell, clean training ("none") first when `include_clean`, then the control
    (`CONTROL`: sample-wise random noise at the same budget) when `include_control`: the two rows that prove the
    judge (the control must stay within a few points of clean) and give each defense's cost on clean data.

    Finished runs come from the cache, so calling this again after an interruption resumes at the first
    unfinished cell. `on_result(result, done, total)` is called after every cell (e.g. to save partial
    tables); a progress bar counts cells.
    """
    from tqdm.auto import tqdm

    for what, names in (("attacks", attacks), ("defenses", defenses)):
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(isinstance(n, str)
                                                                                      for n in names):
            raise TypeError(f"run_matrix: {what} must be a list of names, e.g. ['ar'], got {names!r}")
    check_seeds(seeds, "run_matrix")
    unknown = [d for d in defenses if d not in DEFENSES]
    if unknown:
        raise ValueError(f"unknown defense(s) {unknown}; expected some of {', '.join(sorted(DEFENSES))}")
    rows = (["none"] if include_clean and "none" not in attacks else [])
    rows += [CONTROL] if include_control and CONTROL not in attacks else []
    rows += list(attacks)
    cells = [(a, d) for a in rows for d in defenses]
    results: list[Result] = []
    with tqdm(total=len(cells), desc="matrix", unit="cell", disable=quiet) as bar:
        for attack, defense in cells:
            bar.set_postfix_str(f"{attack} + {defense}")
            result = run_experiment(attack, defense, dataset, protocol, seeds, device=device, cache=cache, quiet=True)
            results.append(result)
            if on_result is not None:
                on_result(result, len(results), len(cells))
            bar.update(1)
    return results
