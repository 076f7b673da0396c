"""Where the tasks of a grid run: in this process, on a Ray cluster, or as SLURM jobs through submitit.

`run_tasks(tasks, executor, options)` runs a list of `Task`s (a module-level function, its arguments, and the keys
of the tasks it must wait for) and returns one `Outcome` per task: its value, or its error. It knows nothing about
attacks and defenses: `experiments.run_matrix` builds the tasks (one per row, which puts the row's poison and
purified sets in the cache, and one per cell, which depends on its row) and reads the outcomes. The scheduling is
the engines': no queue, retry logic or communication of our own beyond waiting on their futures.

- "local": in this process, in the given order (dependencies first), one after another; today's behaviour.
- "ray": Ray tasks (`ray.init(address=...)`: a running cluster, or a local one started here and stopped after),
  one GPU per task where the cluster has GPUs (`num_gpus=1`), else one CPU. A task waits for its dependencies as
  Ray object references; Ray retries a task once (`max_retries=1`, also on an exception: `retry_exceptions=True`),
  also when its worker process died.
- "slurm": one SLURM job per task through submitit (partition, time, GPUs, CPUs as options; the tasks that become
  ready together are submitted as one job array). A job is submitted when its dependencies have finished, and
  resubmitted once if it failed. `options["cluster"] = "local"` runs the same jobs as local processes through
  submitit's LocalExecutor (the code path SLURM uses: pickled job, fresh process, result file), for testing. The
  cache folder (UEL_CACHE) and the job folder must be on storage that every node sees: `check_shared_storage`.

A task that fails twice is reported (its `Outcome.error`, e.g. "ValueError: ..."); the others go on, and a task
whose dependency failed is reported as not run. Every task sees the driver's UEL_* environment variables (cache
folder, profile, data folder), so that remote workers read and write the same cache. Ray and submitit are optional
(`pip install 'uel_helpers[cluster]'`) and imported only when chosen.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import cache_dir
from .profiles import resolve_profile

EXECUTORS = ("local", "ray", "slurm")
OPTIONS = {  # what each executor accepts in `options` (and `uel matrix` as flags)
    "local": {"worker_setup"},
    "ray": {"address", "num_cpus", "gpus", "cpus", "allow_local_cache", "worker_setup"},
    "slurm": {"partition", "time", "gpus", "cpus", "mem_gb", "account", "qos", "array_parallelism", "additional",
              "folder", "cluster", "allow_local_cache", "poll", "worker_setup"},
}
EXTRA = "pip install 'uel_helpers[cluster]' (from a checkout: pip install '.[cluster]')"
# File systems that every node of a cluster mounts (network and parallel file systems). Anything else (ext4, xfs,
# btrfs, zfs, tmpfs, overlay, ...) is local to one machine: a job on another node would not see its files.
SHARED_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "cephfs", "fuse.ceph", "fuse.cephfs", "glusterfs",
             "fuse.glusterfs", "cifs", "smb3", "smbfs", "panfs", "wekafs", "fuse.weka", "orangefs", "pvfs2", "gfs2",
             "ocfs2", "afs", "fuse.juicefs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone"}
LOCAL_ONLY_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args)` after the tasks named in `after` (keys of earlier tasks) have finished.
    `fn` must be a module-level function (remote workers import it by name)."""

    key: str
    fn: Callable
    args: tuple = ()
    after: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What became of a task: its return value, or the error of its last attempt (then value is None)."""

    key: str
    value: Any = None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def _describe_error(err: BaseException) -> str:
    cause = getattr(err, "cause", None)  # ray.exceptions.RayTaskError wraps the task's own exception
    if isinstance(cause, BaseException):
        err = cause
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:400] if text else ''}".rstrip(": ")


def _call(fn: Callable, args: tuple, env: dict, setup: Callable | None, key: str, threads: int | None,
          *after) -> Any:
    """What a worker runs: the driver's UEL_* environment, `threads` CPU threads for torch (the task's `cpus`: on a
    CPU, float sums depend on the thread count, so a task's numbers equal a sequential run's with the same count),
    the optional `worker_setup(key)`, then `fn(*args)`. `after` (the dependencies' values, resolved by Ray before
    the call) only orders the task."""
    os.environ.update(env)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if setup is not None:
        setup(key)
    return fn(*args)


def _import(name: str, executor: str):
    try:
        return __import__(name)
    except ImportError as err:
        raise ImportError(f"executor {executor!r} needs the `{name}` package, which is not installed: {EXTRA} "
                          f"(or pip install {name})") from err


def check_options(executor: str, options: dict | None, who: str = "run_matrix") -> dict:
    """The executor's name checked against EXECUTORS and its options against OPTIONS; returns a copy."""
    if not isinstance(executor, str) or executor not in EXECUTORS:
        raise ValueError(f"{who}: unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{who}: executor_options must be a dict such as {{'address': 'auto'}}, got {options!r}")
    unknown = sorted(set(options) - OPTIONS[executor])
    if unknown:
        raise ValueError(f"{who}: executor {executor!r} does not take {unknown}; it takes "
                         f"{', '.join(sorted(OPTIONS[executor]))}")
    setup = options.get("worker_setup")
    if setup is not None and not callable(setup):
        raise TypeError(f"{who}: worker_setup must be a function (task key) -> None, got {setup!r}")
    return dict(options)


def parse_time(value: int | str) -> int:
    """A job's time limit in minutes from minutes (90) or SLURM's forms "MM", "HH:MM:SS", "D-HH:MM[:SS]"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(value).strip())
    if not m or str(value).strip() in ("", "0"):
        raise ValueError(f"time limit {value!r}: expected minutes (e.g. 90) or HH:MM:SS / D-HH:MM:SS (e.g. 4:00:00)")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        minutes = days * 24 * 60 + a * 60 + (b or 0) + (1 if c else 0)
    elif b is None:  # MM
        minutes = a
    elif c is None:  # MM:SS, rounded up to a whole minute
        minutes = a + (1 if b else 0)
    else:  # HH:MM:SS
        minutes = a * 60 + b + (1 if c else 0)
    if minutes < 1:
        raise ValueError(f"time limit {value!r} is under a minute")
    return minutes


# --- shared storage ---------------------------------------------------------------------------------------------

def _mounts(text: str | None) -> list[tuple[str, str]]:
    if text is None:
        try:
            text = Path("/proc/mounts").read_text()
        except OSError:
            return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[1].replace("\\040", " "), parts[2]))
    return out


def _resolved(path: str | os.PathLike) -> Path:
    """`path` with its existing part's symbolic links resolved (the folder may not exist yet)."""
    p = Path(path).expanduser().absolute()
    head, tail = p, []
    while not head.exists() and head != head.parent:
        head, tail = head.parent, [head.name, *tail]
    return head.resolve().joinpath(*tail)


def storage_of(path: str | os.PathLike, mounts: str | None = None) -> tuple[str, str]:
    """(mount point, file-system type) of the file system that holds (or would hold) `path`, read from /proc/mounts
    (or `mounts`, the same format); ("", "unknown") when it cannot be told."""
    p = _resolved(path)
    best = ("", "unknown")
    for mount, fstype in _mounts(mounts):
        inside = str(p) == mount or str(p).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, fstype)
    return best


def check_shared_storage(path: str | os.PathLike, what: str = "the cache folder (UEL_CACHE)",
                         mounts: str | None = None) -> None:
    """ValueError unless `path` is on a network or parallel file system (SHARED_FS) outside /tmp-like folders: SLURM
    jobs run on other nodes, and they share poisons, purified sets and results through this folder."""
    resolved = _resolved(path)
    mount, fstype = storage_of(resolved, mounts)
    fix = ("Set UEL_CACHE (and executor_options['folder']) to a folder on shared storage (your cluster's NFS home, "
           "Lustre/GPFS/BeeGFS scratch), or pass allow_local_cache=True (`uel matrix --allow-local-cache`) if every "
           "job runs on this machine")
    local = [d for d in LOCAL_ONLY_DIRS if str(resolved) == d or str(resolved).startswith(d + "/")]
    if local:
        raise ValueError(f"{what} {resolved} is under a machine-local folder ({local[0]}, on {fstype} mounted at "
                         f"{mount or '?'}): SLURM jobs on other nodes would not see what this one writes. {fix}.")
    if fstype not in SHARED_FS:
        raise ValueError(f"{what} {resolved} is on file system type {fstype!r} (mounted at {mount or '?'}), local to "
                         f"one machine as far as we can tell (shared ones: NFS, Lustre, GPFS, BeeGFS, CephFS, ...): "
                         f"SLURM jobs on other nodes would not see it. {fix}.")


# --- the three executors -----------------------------------------------------------------------------------------

def run_tasks(tasks: Sequence[Task], executor: str = "local", options: dict | None = None,
              on_done: Callable[[Outcome], None] | None = None) -> dict[str, Outcome]:
    """Run `tasks` (dependencies listed before their dependents) on `executor`; one Outcome per task key.

    `on_done(outcome)` is called in this process as each task ends (in completion order for ray and slurm); an
    exception it raises stops the run and propagates (that is how a caller interrupts a grid).
    """
    options = check_options(executor, options, "run_tasks")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run_tasks: task keys must be unique, got {keys}")
    known: set[str] = set()
    for t in tasks:
        missing = [d for d in t.after if d not in known]
        if missing:
            raise ValueError(f"run_tasks: task {t.key!r} waits for {missing}, which must come earlier in the list")
        known.add(t.key)
    env = {k: v for k, v in os.environ.items() if k.startswith("UEL_")}
    env["UEL_CACHE"] = str(cache_dir().absolute())
    env["UEL_PROFILE"] = resolve_profile(None)  # the driver's profile is the grid's (a GPU worker would pick paper)
    run = {"local": _run_local, "ray": _run_ray, "slurm": _run_slurm}[executor]
    return run(list(tasks), options, env, on_done or (lambda outcome: None))


def _not_run(task: Task, outcomes: dict[str, Outcome]) -> Outcome | None:
    failed = [d for d in task.after if outcomes[d].error is not None]
    if not failed:
        return None
    return Outcome(task.key, error=f"not run: {failed[0]} failed ({outcomes[failed[0]].error})", attempts=0)


def _run_local(tasks: list[Task], options: dict, env: dict, on_done: Callable) -> dict[str, Outcome]:
    setup = options.get("worker_setup")
    outcomes: dict[str, Outcome] = {}
    for task in tasks:
        outcome = _not_run(task, outcomes)
        t0 = time.perf_counter()
        for attempt in (1, 2):
            if outcome is not None:
                break
            try:
                outcome = Outcome(task.key, _call(task.fn, task.args, {}, setup, task.key, None), attempts=attempt)
            except Exception as err:  # noqa: BLE001 - a failed task is reported, not raised
                if attempt == 1:
                    warnings.warn(f"{task.key} failed ({_describe_error(err)}); retrying it once", stacklevel=2)
                else:
                    outcome = Outcome(task.key, error=_describe_error(err), attempts=2)
        outcome.seconds = time.perf_counter() - t0
        outcomes[task.key] = outcome
        on_done(outcome)
    return outcomes


def _run_ray(tasks: list[Task], options: dict, env: dict, on_done: Callable) -> dict[str, Outcome]:
    ray = _import("ray", "ray")
    started = not ray.is_initialized()
    if started:
        address = options.get("address")
        ray.init(address=address, num_cpus=options.get("num_cpus") if address is None else None,
                 include_dashboard=False)
    try:
        if len(ray.nodes()) > 1 and not options.get("allow_local_cache"):
            check_shared_storage(cache_dir(), "the cache folder (UEL_CACHE), used by every Ray node,")
        gpus = options.get("gpus", 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0)
        remote = ray.remote(_call).options(num_gpus=gpus, num_cpus=options.get("cpus", 1), max_retries=1,
                                           retry_exceptions=True)
        setup = options.get("worker_setup")
        refs, started_at = {}, {}
        for task in tasks:
            refs[task.key] = remote.remote(task.fn, task.args, env, setup, task.key, options.get("cpus", 1),
                                           *(refs[d] for d in task.after))
            started_at[task.key] = time.perf_counter()
        key_of = {ref: key for key, ref in refs.items()}
        pending, outcomes = list(refs.values()), {}
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                key = key_of[done[0]]
                try:
                    outcome = Outcome(key, ray.get(done[0]))
                except Exception as err:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...: reported per task
                    outcome = Outcome(key, error=_describe_error(err), attempts=2)
                outcome.seconds = time.perf_counter() - started_at[key]
                outcomes[key] = outcome
                on_done(outcome)
        except BaseException:  # interrupted (Ctrl-C, or on_done raised): the unfinished tasks are cancelled
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)  # a running task gets a KeyboardInterrupt; a waiting one never starts
            raise
        return {t.key: outcomes[t.key] for t in tasks}
    finally:
        if started:
            ray.shutdown()


def _slurm_executor(options: dict):
    submitit = _import("submitit", "slurm")
    cluster = options.get("cluster", "slurm")
    if cluster not in ("slurm", "local", "debug"):
        raise ValueError(f"executor 'slurm': cluster must be 'slurm', or 'local'/'debug' (submitit's local "
                         f"executors, for testing), got {cluster!r}")
    folder = Path(options.get("folder") or cache_dir() / "submitit").expanduser().absolute()
    if cluster == "slurm":
        if not options.get("allow_local_cache"):
            check_shared_storage(cache_dir(), "the cache folder (UEL_CACHE)")
            check_shared_storage(folder, "the job folder (executor_options['folder'])")
        else:
            warnings.warn("allow_local_cache: the shared-storage check of UEL_CACHE is skipped; jobs that run on "
                          "another node will not see the poisons and results written here", stacklevel=3)
        if shutil.which("sbatch") is None:
            raise ValueError("executor 'slurm': there is no `sbatch` on this machine; run from a SLURM login node, "
                             "or pass executor_options={'cluster': 'local'} to run the jobs as local processes")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    gpus = options.get("gpus")
    if gpus is None:
        import torch

        gpus = 1 if cluster == "slurm" or torch.cuda.is_available() else 0
    params = {"timeout_min": parse_time(options.get("time", 720)), "gpus_per_node": gpus,
              "cpus_per_task": options.get("cpus", 4 if cluster == "slurm" else 1), "name": "uel-matrix",
              "slurm_partition": options.get("partition"), "slurm_account": options.get("account"),
              "slurm_qos": options.get("qos"), "slurm_array_parallelism": options.get("array_parallelism"),
              "slurm_additional_parameters": options.get("additional"), "mem_gb": options.get("mem_gb")}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor, (1.0 if cluster != "slurm" else 15.0)


def _run_slurm(tasks: list[Task], options: dict, env: dict, on_done: Callable) -> dict[str, Outcome]:
    executor, poll = _slurm_executor(options)
    poll = float(options.get("poll", poll))
    setup = options.get("worker_setup")
    threads = options.get("cpus", 4 if options.get("cluster", "slurm") == "slurm" else 1)  # = cpus_per_task
    waiting, running, outcomes = list(tasks), {}, {}

    def submit(batch: list[tuple[Task, int]]) -> None:
        with executor.batch():  # one job array for the tasks that became ready together
            jobs = [executor.submit(_call, task.fn, task.args, env, setup, task.key, threads) for task, _ in batch]
        for (task, attempt), job in zip(batch, jobs, strict=True):
            running[task.key] = (job, task, attempt, time.perf_counter())

    try:
        _slurm_loop(waiting, running, outcomes, submit, on_done, poll)
    except BaseException:  # interrupted (Ctrl-C, or on_done raised): the queued and running jobs are cancelled
        for job, *_ in running.values():
            with contextlib.suppress(Exception):
                job.cancel(check=False)
        raise
    return {t.key: outcomes[t.key] for t in tasks}


def _slurm_loop(waiting: list[Task], running: dict, outcomes: dict, submit: Callable, on_done: Callable,
                poll: float) -> None:
    """Submit the tasks whose dependencies are done, collect the finished jobs (resubmitting a failed one once)."""
    while waiting or running:
        ready = [t for t in waiting if all(d in outcomes for d in t.after)]
        for task in ready:
            waiting.remove(task)
        skipped = [(t, _not_run(t, outcomes)) for t in ready]
        for task, outcome in skipped:
            if outcome is not None:
                outcomes[task.key] = outcome
                on_done(outcome)
        if batch := [(t, 1) for t, outcome in skipped if outcome is None]:
            submit(batch)
        retry = []
        for key, (job, task, attempt, t0) in list(running.items()):
            if not job.done():
                continue
            del running[key]
            try:
                outcome = Outcome(key, job.result(), attempts=attempt)
            except Exception as err:  # noqa: BLE001 - a failed or killed job: resubmitted once, then reported
                if attempt == 1:
                    warnings.warn(f"{key} failed (job {job.job_id}: {_describe_error(err)}); resubmitting it once",
                                  stacklevel=2)
                    retry.append((task, 2))
                    continue
                outcome = Outcome(key, error=f"{_describe_error(err)} (job {job.job_id})", attempts=2)
            outcome.seconds = time.perf_counter() - t0
            outcome.extra["job_id"] = job.job_id
            outcomes[key] = outcome
            on_done(outcome)
        if retry:
            submit(retry)
        if running and not ready and not retry:
            time.sleep(poll)
