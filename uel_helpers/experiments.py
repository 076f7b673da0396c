"""Attack × defense runs: make the poison, apply the defense, train the judge, read its accuracy.

`run_experiment(attack, defense, dataset, protocol, seeds)` is the one function the notebooks and
`uel matrix` call. Every expensive step is cached on disk by its configuration (the poison by
`make_poison`, the purified training set and each training run here), so re-running a notebook or a
matrix reuses finished work and an interrupted matrix resumes at the first unfinished run.

`run_matrix` runs a grid of them as tasks on an executor (`executors.py`: in this process, on a Ray cluster, or as
SLURM jobs through submitit): one task per row makes the row's poison and purified sets once, into the cache; one
task per cell and seed (poison -> defense -> judge) waits for its row and reads them from there; the clean
baseline's seeds are tasks too. A cell whose task fails twice is a `Result` with its `error`, beside the others.
"""

from __future__ import annotations

import math
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
from .distributed import under_torchrun, world_size
from .executors import Outcome, Task, check_options, run_tasks
from .poisons import REGISTRY as ATTACKS
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
    error: str | None = None  # a grid cell that failed twice: its error (and no curves)

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
    def failed(self) -> bool:
        return self.error is not None

    @property
    def mean(self) -> float:
        """Mean reported accuracy over seeds (NaN for a failed cell)."""
        return statistics.fmean(self.accuracy) if self.accuracy else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracy) if len(self.accuracy) > 1 else 0.0

    def summary(self) -> dict:
        """One flat row (for tables, CSV and JSON); a failed cell has NaN numbers and its `error`."""
        if self.failed or not self.test_acc:
            return {"attack": self.attack, "defense": self.defense, "dataset": self.dataset, "protocol": self.protocol,
                    "seeds": len(self.seeds), "reading": self.reading, "accuracy": math.nan, "std": math.nan,
                    "error": self.error or "no curves"}
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


def _resolve_data(dataset) -> tuple[ImageSet, ImageSet, str] | DataSpec:
    """A (train, test) pair as (train, test, label), or the DataSpec a name or spec stands for (not loaded)."""
    if isinstance(dataset, tuple):
        if len(dataset) != 2 or not all(isinstance(d, ImageSet) for d in dataset):
            raise TypeError("dataset must be a name, a DataSpec, or a (train, test) pair of ImageSets")
        train_set, test_set = dataset
        return train_set, test_set, f"{train_set.name} ({len(train_set)} images, " \
                                    f"{tensor_fingerprint(train_set.images)[:8]})"
    spec = DataSpec(dataset) if isinstance(dataset, str) else dataset
    if not isinstance(spec, DataSpec):
        raise TypeError(f"dataset must be a name, a DataSpec, or a (train, test) pair, got {type(dataset)}")
    return spec


def _load_data(dataset) -> tuple[ImageSet, ImageSet, str]:
    data = _resolve_data(dataset)
    return data if isinstance(data, tuple) else (*data.load(), data.label)


def _train_cached(train_set: ImageSet, test_set: ImageSet, protocol: Protocol, seed: int, device, quiet: bool,
                  cache: bool) -> tuple[History, float]:
    """One judge training, cached by (data, protocol, seed, device type); returns it and its wall time."""
    config = {"train": dataset_fingerprint(train_set), "test": dataset_fingerprint(test_set),
              "protocol": protocol.to_dict(), "seed": seed, "device": device.type, "version": CACHE_VERSION}
    if under_torchrun():  # a DDP run (training.train under torchrun) is its own run; single-process keys unchanged
        config["world_size"] = world_size()
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
    train_set, test_set, label = _load_data(dataset)
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
        if r.failed:
            lines.append(f"{r.attack:24s} {r.defense:18s} FAILED: {r.error}")
            continue
        s = r.summary()
        clean = f"{100 * s['clean']:6.2f}" if "clean" in s else "     -"
        acc = f"{100 * s['accuracy']:6.2f} ± {100 * s['std']:4.2f}"
        lines.append(f"{r.attack:24s} {r.defense:18s} {acc:>13s} {100 * s['final']:6.2f} {100 * s['peak']:6.2f} "
                     f"{s['peak_epoch']:5.1f} {clean:>7s} {s['seconds']:7.1f}")
    return "\n".join(lines)


CONTROL = "random-noise-samplewise"  # the judge's control row: noise without class structure, the same budget


def _row_task(attack: str, defenses: list[str], dataset, protocol: Protocol, device) -> dict[str, float]:
    """Make a row's poison and purified sets into the cache, once, for the row's cells (which wait for this task and
    then read them from the cache, as `run_experiment` would find them). Returns the seconds spent."""
    t0 = time.perf_counter()
    train_set, _, _ = _load_data(dataset)
    poisoned = train_set if attack == "none" else make_poison(attack, train_set, seed=0, cache=True, device=device,
                                                              quiet=True).poisoned
    seconds = {"poison": time.perf_counter() - t0}
    for defense in defenses:
        if get_defense(defense).kind == "purify":
            t0 = time.perf_counter()
            _defended(defense, poisoned, protocol, {}, cache=True)
            seconds[defense] = time.perf_counter() - t0
    return seconds


def _seed_task(attack: str, defense: str, dataset, protocol: Protocol, seed: int, device, cache: bool) -> Result:
    """One seed of one cell: the judge on (attack, defense), without its baseline (the baseline is its own tasks)."""
    return run_experiment(attack, defense, dataset, protocol, [seed], baseline=False, device=device, cache=cache,
                          quiet=True)


def _merge_seeds(parts: list[Result]) -> Result:
    """A cell's Result from its seeds' (in seed order); failed when any seed failed (the first failure's error)."""
    first = parts[0]
    failed = [(p.seeds[0], p.error) for p in parts if p.error is not None]
    merged = Result(first.attack, first.defense, first.dataset, first.protocol, [p.seeds[0] for p in parts],
                    first.reading, [], [], [])
    if failed:
        seed, error = failed[0]
        merged.error = error if len(parts) == 1 else f"seed {seed}: {error}"
        return merged
    for part in parts:
        merged.test_acc += part.test_acc
        merged.train_loss += part.train_loss
        merged.train_acc += part.train_acc
        for step, took in part.seconds.items():  # data, poison and defense come from the cache after the first seed
            merged.seconds[step] = merged.seconds.get(step, 0.0) + took
    return merged


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
    executor: str = "local",
    executor_options: dict | None = None,
) -> list[Result]:
    """Evaluate every (attack, defense) cell, clean training ("none") first when `include_clean`, then the control
    (`CONTROL`: sample-wise random noise at the same budget) when `include_control`: the two rows that prove the
    judge (the control must stay within a few points of clean) and give each defense's cost on clean data.

    executor: where the cells run (`uel_helpers.executors`): "local" (this process, one after another), "ray" (Ray
    tasks on a running cluster, `executor_options={"address": "auto"}`, or on a local one; one GPU per task where
    the cluster has GPUs) or "slurm" (SLURM jobs through submitit; options `partition`, `time`, `gpus`, `cpus`, ...;
    the cache folder UEL_CACHE must be on shared storage, checked; `{"cluster": "local"}` runs the same jobs as
    local processes). Each cell's seed (poison -> defense -> judge) is a task, "cell <attack>+<defense> seed <s>";
    one task per row, "row <attack>", makes the row's poison and purified sets once, into the cache, and the row's
    cells wait for it; the clean baseline's seeds are tasks of their own. Ray and SLURM need `cache=True` (tasks
    share their work through the cache). The numbers are those of the local run when the thread count is the same
    (every judge seeds itself; a Ray or SLURM task runs with its `cpus` as torch threads, and on a CPU float sums
    depend on the thread count; on a GPU it does not matter).

    Finished runs come from the cache, so calling this again after an interruption resumes: finished cells cost
    only a data load and cache reads. A task that fails is retried once; a cell whose seed (or row) failed again
    is returned as a `Result` with its `error` (and NaN accuracy), and the other cells go on.
    `on_result(result, done, total)` is called in this process after every cell (in grid order locally, in
    completion order on ray and slurm), e.g. to save partial tables; an exception it raises stops the grid (ray and
    slurm cancel the unfinished tasks). A progress bar counts cells. The results come back in grid order (rows, then
    defenses), each with its clean baseline.
    """
    from tqdm.auto import tqdm

    for what, names in (("attacks", attacks), ("defenses", defenses)):
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(isinstance(n, str)
                                                                                      for n in names):
            raise TypeError(f"run_matrix: {what} must be a list of names, e.g. ['ar'], got {names!r}")
    seed_list = check_seeds(seeds, "run_matrix")
    unknown = [d for d in defenses if d not in DEFENSES]
    if unknown:
        raise ValueError(f"unknown defense(s) {unknown}; expected some of {', '.join(sorted(DEFENSES))}")
    unknown = [a for a in attacks if a != "none" and a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; expected some of {', '.join(sorted(ATTACKS))} or 'none'")
    for flag, value in (("include_clean", include_clean), ("include_control", include_control), ("cache", cache),
                        ("quiet", quiet)):
        check_bool(value, flag, "run_matrix")
    options = check_options(executor, executor_options, "run_matrix")
    if executor != "local" and under_torchrun():
        raise ValueError(f"run_matrix: executor {executor!r} under torchrun would submit the whole grid once per "
                         f"process ({world_size()} times); start the driver as one process (each task takes its own "
                         "GPU), or use executor='local' under torchrun to train every cell with DDP")
    if executor != "local" and not cache:
        raise ValueError(f"run_matrix: executor {executor!r} shares poisons, purified sets and results between its "
                         "tasks through the cache; use cache=True (or executor='local')")
    proto = get_protocol(protocol)
    data = _resolve_data(dataset)
    label = data[2] if isinstance(data, tuple) else data.label
    rows = (["none"] if include_clean and "none" not in attacks else [])
    rows += [CONTROL] if include_control and CONTROL not in attacks else []
    rows += list(attacks)
    cells = [(a, d) for a in rows for d in defenses]

    # Tasks, dependencies first: the baseline's seeds, then per row the row task and its cells' seeds.
    def seed_tasks(attack: str, defense: str, after: tuple[str, ...]) -> list[Task]:
        return [Task(f"cell {attack}+{defense} seed {seed}", _seed_task,
                     (attack, defense, dataset, proto, seed, device, cache), after=after) for seed in seed_list]

    tasks = seed_tasks("none", "none", ())
    for attack in rows:
        row_key = f"row {attack}"
        if cache:
            tasks.append(Task(row_key, _row_task, (attack, list(defenses), dataset, proto, device)))
        for d in defenses:
            if (attack, d) != ("none", "none"):
                tasks += seed_tasks(attack, d, (row_key,) if cache else ())
    cell_of = {f"cell {a}+{d} seed {seed}": (a, d) for a in ["none", *rows] for d in defenses for seed in seed_list}
    wanted = set(cells)
    parts: dict[tuple[str, str], dict[int, Result]] = {}
    results: dict[tuple[str, str], Result] = {}
    state: dict[str, Result | None] = {"clean": None}

    def result_of(outcome: Outcome, attack: str, defense: str, seed: int) -> Result:
        if outcome.error is None:
            return outcome.value
        return Result(attack, defense, label, proto.name, [seed], get_defense(defense).reading, [], [], [],
                      error=outcome.error)

    def with_clean(result: Result) -> Result:
        clean = state["clean"]
        if result.clean is None and clean is not None and not clean.failed and \
                (result.attack, result.defense) != ("none", "none"):
            result.clean = clean
        return result

    with tqdm(total=len(cells), desc="matrix", unit="cell", disable=quiet) as bar:
        def done(outcome: Outcome) -> None:
            if outcome.key not in cell_of:
                return  # a row task: its cells report its failure
            attack, defense = cell_of[outcome.key]
            seed = int(outcome.key.rsplit(" ", 1)[1])
            got = parts.setdefault((attack, defense), {})
            got[seed] = result_of(outcome, attack, defense, seed)
            if len(got) < len(seed_list):
                return
            result = _merge_seeds([got[seed] for seed in seed_list])
            if (attack, defense) == ("none", "none"):
                state["clean"] = result
            if (attack, defense) not in wanted:
                return
            results[(attack, defense)] = result = with_clean(result)
            bar.set_postfix_str(f"{attack} + {defense}" + (" FAILED" if result.failed else ""))
            bar.update(1)
            if on_result is not None:
                on_result(result, len(results), len(cells))

        run_tasks(tasks, executor, options, done)
    return [with_clean(results[cell]) for cell in cells]
