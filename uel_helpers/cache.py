"""On-disk cache for expensive artefacts (poisons, trained models), keyed by a hash of their configuration.

Files are written atomically with their configuration beside them (`<key>.json`); a file that cannot
be read back is reported, deleted and rebuilt rather than trusted.
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
    h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.uint8 else t.numpy().tobytes())
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
    """Call `write(tmp)` then rename tmp -> path, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")  # keeps the suffix (numpy appends .npz otherwise)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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
    """Return the cached artefact for `config`, building (and saving) it when absent or unreadable."""
    if suffix == ".json":
        raise ValueError("cached(): the suffix '.json' is taken by the configuration file beside the artefact; "
                         "use another, e.g. '.history'")
    if not enabled:
        return build()
    path = cache_path(kind, config, suffix, root)
    if path.exists():
        try:
            return load(path)
        except Exception as err:  # a corrupt or stale file is rebuilt, loudly
            warnings.warn(f"cache file {path} could not be read ({err}); rebuilding it", stacklevel=2)
            path.unlink(missing_ok=True)
    value = build()
    atomic_write(path, lambda tmp: save(value, tmp))
    meta = path.with_suffix(".json")
    atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(_jsonable(config), indent=2)))
    return value
