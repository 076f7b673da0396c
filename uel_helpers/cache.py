"""On-disk cache for expensive artefacts (poisons, trained models), keyed by a hash of their configuration.

Files are written atomically with a description beside them (`<key>.json`: the configuration and the
SHA-256 of the file's bytes); an entry whose description, hash or content does not check out is reported,
deleted and rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def writes_here() -> bool:
    """False in every process but rank 0 of a multi-process run (torchrun / torch.distributed): only rank 0 writes
    cache entries; the other ranks build the same artefact alongside it (a DDP training needs every rank) and read.
    (`distributed.is_main` says the same; the cache sits below it and reads the rank itself.)"""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    rank = os.environ.get("RANK", "0").strip()
    return not rank.isdigit() or int(rank) == 0


def cache_dir() -> Path:
    """The cache folder for expensive artefacts: `UEL_CACHE`, default `~/.cache/uel_helpers` (the cache owns its
    folder; the notebook layer re-exports this)."""
    return Path(os.environ.get("UEL_CACHE") or "~/.cache/uel_helpers").expanduser()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return tensor_fingerprint(value)
    if isinstance(value, np.ndarray):
        return tensor_fingerprint(torch.from_numpy(np.ascontiguousarray(value)))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def tensor_fingerprint(t: torch.Tensor) -> str:
    """A short SHA-256 of a tensor's bytes, shape and dtype (identifies a dataset in a cache key)."""
    h = hashlib.sha256()
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(memoryview(t.view(torch.uint8).numpy() if t.dtype != torch.uint8 else t.numpy()))  # no byte copy
    return h.hexdigest()[:16]


def config_key(config: dict) -> str:
    """Hash of a JSON-able configuration: the cache file name."""
    text = json.dumps(_jsonable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(kind: str, config: dict, suffix: str = ".npz", root: str | os.PathLike | None = None) -> Path:
    """Where the artefact of `kind` with this configuration lives: `<cache>/<kind>/<hash><suffix>`."""
    base = Path(root).expanduser() if root is not None else cache_dir()
    return base / kind / f"{config_key(config)}{suffix}"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` then rename tmp -> path, so a crash never leaves a half-written file.

    A path that is itself the temporary file of an outer atomic_write (`cached` saving through an object's own
    atomic `save`) is written in place: one temporary file, not one inside another.
    """
    if path.name.startswith(_TMP_PREFIX):
        write(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{path.name}")  # keeps the suffix (numpy appends .npz otherwise)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


_TMP_PREFIX = ".tmp"
ENTRY_FORMAT = "uel-cache-2"  # the sidecar: {"format", "config", "sha256", "bytes"}


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _check_entry(path: Path, config: dict) -> bool:
    """Raise ValueError unless the sidecar of `path` declares this configuration and the file's exact bytes.

    Returns False for an entry written before content hashes (sidecar = the bare configuration, equal to this
    one): `cached` then trusts it once if `load` accepts it and records its hash, so old caches of long trainings
    are not thrown away; every entry written since is checked byte for byte.
    """
    meta = path.with_suffix(".json")
    try:
        entry = json.loads(meta.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"its description {meta.name} is missing or unreadable ({err})") from err
    if entry == _jsonable(config):
        return False
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT:
        raise ValueError(f"its description {meta.name} is not a {ENTRY_FORMAT} entry")
    if entry.get("config") != _jsonable(config):
        raise ValueError("it was made from another configuration than its name says")
    if entry.get("bytes") != path.stat().st_size or entry.get("sha256") != file_sha256(path):
        raise ValueError("its content differs from what was written (changed or damaged on disk)")
    return True


def _describe(path: Path, config: dict) -> None:
    entry = {"format": ENTRY_FORMAT, "config": _jsonable(config), "sha256": file_sha256(path),
             "bytes": path.stat().st_size}
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(entry, indent=2)))


def _store(path: Path, config: dict, value, save: Callable) -> None:
    """Write the artefact, then its sidecar with the configuration and the content hash (written last: an
    entry without a matching sidecar is never trusted)."""
    atomic_write(path, lambda tmp: save(value, tmp))
    _describe(path, config)


def cached(
    kind: str,
    config: dict,
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    suffix: str = ".npz",
    enabled: bool = True,
    root: str | os.PathLike | None = None,
) -> T:
    """Return the cached artefact for `config`, building (and saving) it when absent or corrupt.

    An entry is trusted only when its sidecar `<key>.json` names the same configuration and the SHA-256 of the
    file's bytes, and `load` accepts it; anything else (a damaged byte, a changed digit, an older entry, a file
    `load` refuses) is reported with a warning, and the artefact is rebuilt. A cache folder that cannot be
    written (read-only, full) costs only the caching: a warning, and the result is returned uncached. In a
    multi-process run only rank 0 writes (`writes_here`); the other ranks read, or build without storing.
    """
    if suffix == ".json":
        raise ValueError("cached(): the suffix '.json' is taken by the description file beside the artefact; "
                         "use another, e.g. '.history'")
    if not enabled:
        return build()
    path = cache_path(kind, config, suffix, root)
    if path.exists():
        try:
            hashed = _check_entry(path, config)
            value = load(path)
            if not hashed and writes_here():
                try:
                    _describe(path, config)
                except OSError:
                    pass  # a read-only cache keeps its old entry
            return value
        except Exception as err:  # a corrupt or stale entry is rebuilt, loudly
            warnings.warn(f"cache entry {path} cannot be trusted ({err}); rebuilding it", stacklevel=2)
            for stale in (path, path.with_suffix(".json")) if writes_here() else ():
                try:
                    stale.unlink(missing_ok=True)
                except OSError:
                    pass  # a read-only cache: the rebuilt result is returned uncached (below)
    value = build()
    if not writes_here():
        return value
    try:
        _store(path, config, value, save)
    except OSError as err:
        warnings.warn(f"cache folder {path.parent} is not writable ({err.__class__.__name__}: {err}); the result "
                      "is not cached. Set UEL_CACHE to a writable folder to keep it.", stacklevel=2)
    return value
