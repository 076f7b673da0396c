"""The grid on an engine (uel_helpers.executors): a local Ray cluster and submitit's local executor give the
sequential run's numbers, a worker killed mid-grid loses no finished cell, a failed cell is reported and retried
once, and bad input (unknown executor, engine not installed, a cache that is not shared storage) says how to fix it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter

import pytest
import torch

from uel_helpers import executors
from uel_helpers.cache import cache_dir
from uel_helpers.cli import main
from uel_helpers.data import synthetic_dataset
from uel_helpers.executors import check_shared_storage, parse_time
from uel_helpers.experiments import DataSpec, format_results, run_experiment, run_matrix


def _installed(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        return False
    return True


# Ray and submitit are the `cluster` extra. Outside CI a missing engine skips its tests with that reason; in CI
# (CI or UEL_REQUIRE_CLUSTER set, as .ci/run does for the browser tests) they run, and fail on the ImportError.
REQUIRED = bool(os.environ.get("UEL_REQUIRE_CLUSTER") or os.environ.get("CI"))
needs_ray = pytest.mark.skipif(not REQUIRED and not _installed("ray"),
                               reason="ray is not installed: pip install '.[cluster]' (CI installs it)")
needs_submitit = pytest.mark.skipif(not REQUIRED and not _installed("submitit"),
                                    reason="submitit is not installed: pip install '.[cluster]' (CI installs it)")

# A 2 x 2 grid at smoke: two attacks (AR's released coefficients need RGB) x no defense and a purifier (BDR, which
# the row task makes once for its row's cell).
ATTACKS, DEFENSES = ["random-noise-classwise", "ar"], ["none", "bdr"]
SPEC = DataSpec("digits", n_per_class=30, as_rgb=True)
GRID = dict(include_clean=False, include_control=False)


def _numbers(results):
    return [(r.attack, r.defense, r.error, r.test_acc, r.train_loss, r.train_acc, r.clean.test_acc) for r in results]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The grid run in this process, one cell after another (its own cache folder): the reference numbers."""
    old, threads = os.environ.get("UEL_CACHE"), torch.get_num_threads()
    os.environ["UEL_CACHE"] = str(tmp_path_factory.mktemp("sequential-cache"))
    # one thread, as every Ray task and local submitit job here (their `cpus` default): on a CPU, float sums depend
    # on the thread count, so only runs with the same count can be compared number for number
    torch.set_num_threads(1)
    try:
        results = run_matrix(ATTACKS, DEFENSES, SPEC, "smoke", 1, **GRID)
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("UEL_CACHE") if old is None else os.environ.__setitem__("UEL_CACHE", old)
    assert not any(r.failed for r in results), format_results(results)
    return results


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster of 2 CPUs for the module (it takes ~20 s to start here). Ray gives its node 30 s to
    register (hard-coded); on a machine loaded by other jobs that can run out, so the start is tried three times."""
    import ray

    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as err:  # noqa: BLE001 - "The current node timed out during startup"
            ray.shutdown()
            if attempt == 2:
                raise RuntimeError(f"a local Ray cluster did not start three times ({err})") from err
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_grid_equals_the_sequential_run(ray_cluster, sequential):
    results = run_matrix(ATTACKS, DEFENSES, SPEC, "smoke", 1, executor="ray", **GRID)
    assert _numbers(results) == _numbers(sequential)


@needs_ray
@pytest.mark.slow  # a Ray grid each (~2-3 min here): in make test-slow, beside CI's 30-minute budget
def test_a_worker_killed_mid_grid_loses_no_finished_cell(ray_cluster, sequential, tmp_path):
    """The first attempt of one cell waits until the clean baseline and another cell are in the cache, notes the
    cache entries there, and kills its own worker process; Ray runs the cell again and the grid completes. The
    entries written before the kill are untouched afterwards (not recomputed), and no other cell ran twice."""
    runs, log, snapshot, target = cache_dir() / "runs", tmp_path / "attempts.log", tmp_path / "snapshot.json", \
        "cell ar+bdr seed 0"

    def crash_once(key):
        import json
        import os
        import time

        with open(log, "a") as fh:
            fh.write(f"{key}\n")
        if key == target and not snapshot.exists():
            deadline = time.time() + 120
            while len(list(runs.glob("*.json"))) < 2 and time.time() < deadline:
                time.sleep(0.2)
            snapshot.write_text(json.dumps({p.name: p.stat().st_mtime_ns for p in runs.glob("*")}))
            os._exit(1)

    results = run_matrix(ATTACKS, DEFENSES, SPEC, "smoke", 1, executor="ray",
                         executor_options={"worker_setup": crash_once}, **GRID)
    assert _numbers(results) == _numbers(sequential)
    attempts = Counter(log.read_text().splitlines())
    assert attempts.pop(target) == 2 and set(attempts.values()) == {1}, attempts
    before = json.loads(snapshot.read_text())
    assert len(before) >= 4  # the baseline and at least one other cell: an entry and its description each
    after = {p.name: p.stat().st_mtime_ns for p in runs.glob("*")}
    assert {name: after.get(name) for name in before} == before


class Stop(Exception):
    """Raised by on_result to interrupt a grid (as Ctrl-C would)."""


@needs_ray
@pytest.mark.slow  # a Ray grid each (~2-3 min here): in make test-slow, beside CI's 30-minute budget
def test_an_interrupted_grid_resumes_where_it_stopped(ray_cluster, sequential):
    """The driver stops the grid after its second finished cell (Ray cancels the rest); the next call finishes it,
    with the sequential numbers, and does not redo a cell that had finished (its cache entries are untouched)."""
    runs = cache_dir() / "runs"

    def stop_after_two(result, done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        run_matrix(ATTACKS, DEFENSES, SPEC, "smoke", 1, executor="ray", on_result=stop_after_two, **GRID)
    before = {p.name: p.stat().st_mtime_ns for p in runs.glob("*")}
    assert len(before) >= 4  # two finished cells (the baseline among them), an entry and its description each
    results = run_matrix(ATTACKS, DEFENSES, SPEC, "smoke", 1, executor="ray", **GRID)
    assert _numbers(results) == _numbers(sequential)
    after = {p.name: p.stat().st_mtime_ns for p in runs.glob("*")}
    assert {name: after.get(name) for name in before} == before


@needs_submitit
def test_submitit_local_executor_runs_cells_as_processes(sequential, tmp_path):
    """executor="slurm" with submitit's LocalExecutor: every task a pickled job in a fresh process (as on SLURM)."""
    pids = tmp_path / "pids"
    pids.mkdir()

    def note_pid(key):
        import os

        (pids / f"{key}.pid").write_text(str(os.getpid()))

    options = {"cluster": "local", "folder": str(tmp_path / "jobs"), "worker_setup": note_pid, "poll": 0.5}
    attacks = ATTACKS[-1:]  # one row of the grid (4 jobs: each costs a fresh Python importing torch)
    results = run_matrix(attacks, DEFENSES, SPEC, "smoke", 1, executor="slurm", executor_options=options, **GRID)
    assert _numbers(results) == [n for n in _numbers(sequential) if n[0] in attacks]
    seen = {p.stem: int(p.read_text()) for p in pids.glob("*.pid")}
    tasks = {"cell none+none seed 0", *(f"row {a}" for a in attacks),
             *(f"cell {a}+{d} seed 0" for a in attacks for d in DEFENSES)}
    assert set(seen) == tasks and os.getpid() not in seen.values() and len(set(seen.values())) == len(seen)


def test_a_failing_cell_is_retried_once_then_reported_and_the_others_go_on(tmp_path):
    data = (synthetic_dataset(n_per_class=8, num_classes=3, channels=3, size=8, seed=0),
            synthetic_dataset(n_per_class=4, num_classes=3, channels=3, size=8, seed=1))
    log = tmp_path / "attempts.log"

    def flaky(key):
        with open(log, "a") as fh:
            fh.write(f"{key}\n")
        if key == "cell random-noise-classwise+jpeg seed 0":
            raise RuntimeError("this cell always fails")
        if key == "cell random-noise-classwise+none seed 0" and log.read_text().count(key) == 1:
            raise RuntimeError("only the first attempt fails")

    with pytest.warns(UserWarning, match="retrying it once"):
        results = run_matrix(["random-noise-classwise"], ["none", "jpeg"], data, "smoke", 1,
                             executor_options={"worker_setup": flaky}, **GRID)
    ok, failed = results
    assert ok.error is None and ok.test_acc and ok.clean is not None
    assert failed.error == "RuntimeError: this cell always fails" and failed.test_acc == []
    assert failed.summary()["error"] == failed.error and failed.mean != failed.mean  # NaN
    assert "FAILED: RuntimeError: this cell always fails" in format_results(results)
    counts = Counter(log.read_text().splitlines())
    assert counts["cell random-noise-classwise+jpeg seed 0"] == 2
    assert counts["cell random-noise-classwise+none seed 0"] == 2


def test_each_seed_of_a_cell_is_a_task_and_the_cell_merges_them(tmp_path):
    """Two seeds: two tasks per cell, the cell's curves those of `run_experiment` with both seeds; a seed that fails
    twice fails its cell, naming the seed."""
    data = (synthetic_dataset(n_per_class=8, num_classes=3, channels=3, size=8, seed=0),
            synthetic_dataset(n_per_class=4, num_classes=3, channels=3, size=8, seed=1))
    keys = []
    results = run_matrix(["random-noise-classwise"], ["none"], data, "smoke", 2, executor_options={
        "worker_setup": keys.append}, **GRID)
    assert set(keys) == {f"cell {c} seed {s}" for c in ("none+none", "random-noise-classwise+none") for s in (0, 1)} \
        | {"row random-noise-classwise"}
    alone = run_experiment("random-noise-classwise", "none", data, "smoke", 2)
    assert (results[0].seeds, results[0].test_acc, results[0].train_loss) == ([0, 1], alone.test_acc, alone.train_loss)
    assert results[0].clean.test_acc == alone.clean.test_acc

    def fail_seed_1(key):
        if key.endswith("+none seed 1") and "random" in key:
            raise RuntimeError("seed 1 breaks")

    with pytest.warns(UserWarning, match="retrying it once"):
        failed, = run_matrix(["random-noise-classwise"], ["none"], data, "smoke", 2,
                             executor_options={"worker_setup": fail_seed_1}, **GRID)
    assert failed.error == "seed 1: RuntimeError: seed 1 breaks" and failed.test_acc == []


def test_cli_reports_a_failed_cell_in_the_table_and_the_csv(tmp_path, capsys):
    """AR's released coefficients refuse 1-channel digits: that row fails, the clean row does not, exit code 1."""
    args = ["matrix", "--dataset", "digits", "--n-per-class", "5", "--attacks", "ar", "--defenses", "none",
            "--protocol", "smoke", "--out", str(tmp_path), "--name", "m", "--quiet"]
    with pytest.warns(UserWarning, match="retrying it once"):
        assert main(args) == 1
    captured = capsys.readouterr()
    # the row task (the poison) failed twice; its cell is reported as not run, with the row's error
    assert "FAILED: not run: row ar failed (ValueError: the released AR coefficients are for 3-channel" in captured.out
    assert "1 cell(s) failed" in captured.err and "ar+none" in captured.err
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert rows[0].split(",")[-1] == "error" and len(rows) == 4  # clean, the control, AR (failed)
    assert all((tmp_path / f"m{suffix}").stat().st_size > 0 for suffix in (".json", ".png"))


MOUNTS = """/dev/sda1 / ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
server:/export/home /home nfs4 rw 0 0
lustre@o2ib:/scratch /scratch lustre rw 0 0
overlay /work overlay rw 0 0
"""


@pytest.mark.parametrize("path, shared", [("/home/u/.cache/uel_helpers", True), ("/scratch/u/uel", True),
                                          ("/work/uel-cache", False), ("/data/uel", False), ("/tmp/uel", False),
                                          ("/dev/shm/uel", False)])
def test_shared_storage_is_told_from_the_mount_table(path, shared):
    if shared:
        check_shared_storage(path, mounts=MOUNTS)
    else:
        with pytest.raises(ValueError, match="SLURM jobs on other nodes would not see"):
            check_shared_storage(path, mounts=MOUNTS)


@pytest.mark.parametrize("value, minutes", [(90, 90), ("90", 90), ("30:00", 30), ("4:00:00", 240), ("1-12", 2160),
                                            ("1-00:30", 1470), ("2:30:01", 151)])
def test_time_limits_in_slurm_forms(value, minutes):
    assert parse_time(value) == minutes


BAD = [
    (dict(executor="dask"), ValueError, r"unknown executor 'dask'; expected one of local, ray, slurm"),
    (dict(executor="ray", executor_options={"partition": "gpu"}), ValueError, r"does not take \['partition'\]"),
    (dict(executor="ray", executor_options="auto"), TypeError, "executor_options must be a dict"),
    (dict(executor="local", executor_options={"worker_setup": 3}), TypeError, "worker_setup must be a function"),
    (dict(executor="ray", cache=False), ValueError, "use cache=True"),
    (dict(executor="slurm"), ValueError, r"under a machine-local folder \(/tmp.*shared storage.*allow_local_cache"),
    (dict(executor="slurm", executor_options={"allow_local_cache": True}), ValueError, "no `sbatch` on this machine"),
    (dict(executor="slurm", executor_options={"time": "soon", "cluster": "local"}), ValueError, "time limit 'soon'"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD, ids=["unknown", "option", "options-type", "setup", "no-cache",
                                                           "local-cache", "no-sbatch", "time"])
def test_bad_input(kwargs, error, match, monkeypatch):
    monkeypatch.setattr(executors.shutil, "which", lambda name: None)  # no SLURM here, whatever the machine
    data = (synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0),) * 2
    options = kwargs.get("executor_options")
    skip_check = isinstance(options, dict) and options.get("allow_local_cache")
    warns = pytest.warns(UserWarning, match="shared-storage check of UEL_CACHE is skipped") if skip_check else \
        contextlib.nullcontext()
    with pytest.raises(error, match=match), warns:
        run_matrix(["random-noise-classwise"], ["none"], data, "smoke", **kwargs)


def test_a_grid_on_an_engine_is_not_started_by_every_torchrun_process(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = (synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0),) * 2
    with pytest.raises(ValueError, match=r"under torchrun would submit the whole grid once per process \(2 times\)"):
        run_matrix(["random-noise-classwise"], ["none"], data, "smoke", executor="ray")


@pytest.mark.parametrize("executor, package, options", [("ray", "ray", None),
                                                         ("slurm", "submitit", {"cluster": "local"})])
def test_missing_engine_names_the_extra(executor, package, options, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # `import ray` now fails as if it were not installed
    data = (synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0),) * 2
    with pytest.raises(ImportError, match=rf"needs the `{package}` package.*pip install 'uel_helpers\[cluster\]'"):
        run_matrix(["random-noise-classwise"], ["none"], data, "smoke", executor=executor, executor_options=options)


@pytest.mark.parametrize("flags, message", [(["--executor", "slurm"], "shared storage"),
                                            (["--executor", "ray", "--partition", "gpu"],
                                             "--partition: not an option of --executor ray")])
def test_cli_bad_executor_flags(flags, message, capsys):
    args = ["matrix", "--dataset", "digits", "--n-per-class", "2", "--attacks", "random-noise-classwise",
            "--defenses", "none", "--protocol", "smoke", "--quiet", *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err
