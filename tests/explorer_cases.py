"""Every explorer of `uel_helpers.widgets.EXPLORERS` on smoke data, and how to drive each of its controls.

Shared by the real-browser test (tests/test_browser.py: a generated notebook imports this module) and the
ipywidgets-7.7.1 test (tests/test_widgets_colab.py: a subprocess with Colab's widget version imports it). Plain
module, no pytest: it must import in a bare kernel. A new explorer joins both tests by adding a builder to
`BUILDERS` (a test fails while `EXPLORERS` has an explorer without one).

The D-VAE and perturbation explorers get a large (18,000-image) set whose first class sits at 5-digit dataset
indices, as on the paper profile, so that column titles and info lines are checked at their longest; the models
are trained on a small subset (an explorer only runs them on the images it shows). Everything is built in seconds
on one CPU core.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

DEVICE = "cpu"
CLASSES = 3
BIG_PER_CLASS = 6000  # 3 x 6,000 images: class 0 at dataset indices 12,000 .. 17,999


@functools.lru_cache(maxsize=1)
def _big_set():
    """Synthetic 3-channel 16x16 images, classes in descending order (class 0 last, at 5-digit indices)."""
    from uel_helpers.data import synthetic_dataset

    small = synthetic_dataset(n_per_class=60, num_classes=CLASSES, channels=3, size=16, seed=0)
    reps = BIG_PER_CLASS // 60
    order = torch.argsort(small.labels, descending=True, stable=True)
    images = small.images[order]
    labels = small.labels[order]
    # repeat each class's 60 images in place, with a small per-copy shift so the copies are not identical
    per = [torch.cat([torch.roll(images[labels == k], shifts=r % 5, dims=-1) for r in range(reps)])
           for k in range(CLASSES - 1, -1, -1)]
    big_labels = torch.cat([torch.full((BIG_PER_CLASS,), k, dtype=torch.int64) for k in range(CLASSES - 1, -1, -1)])
    return small.__class__(torch.cat(per), big_labels, small.classes, name="smoke-big")


@functools.lru_cache(maxsize=1)
def _poisons():
    from uel_helpers.poisons import make_poison

    ds = _big_set()
    return ds, {name: make_poison(name, ds, seed=0, cache=False, device=DEVICE, quiet=True)
                for name in ("random-noise-samplewise", "random-noise-classwise")}


def perturbation():
    from uel_helpers.widgets import perturbation_explorer

    ds, poisons = _poisons()
    return perturbation_explorer(ds, poisons)


def dvae():
    from uel_helpers.data import ImageSet
    from uel_helpers.defenses.dvae import train_dvae
    from uel_helpers.widgets import dvae_explorer

    ds, poisons = _poisons()
    models, poisoned = {}, {}
    pick = torch.cat([torch.nonzero(ds.labels == k).flatten()[:24] for k in range(CLASSES)])
    for name, p in poisons.items():
        small = ImageSet(p.poisoned.images[pick], ds.labels[pick], ds.classes, name=name)
        models[name] = train_dvae(small, 1.0, profile="smoke", width=4, latent_dim=4, epochs=1, quiet=True,
                                  device=DEVICE, cache=False)
        poisoned[name] = p.poisoned
    return dvae_explorer(models, ds, poisoned)


def sharpen():
    from uel_helpers.poisons import make_poison
    from uel_helpers.widgets import sharpen_explorer

    ds = _big_set()
    return sharpen_explorer(make_poison("cuda", ds, seed=0, cache=False, device=DEVICE, quiet=True).poisoned)


def attribution():
    from uel_helpers.attribution import attribute, random_attribution
    from uel_helpers.data import synthetic_dataset
    from uel_helpers.widgets import attribution_explorer

    tr = synthetic_dataset(n_per_class=12, num_classes=CLASSES, channels=3, size=16, seed=0)
    te = synthetic_dataset(n_per_class=2, num_classes=CLASSES, channels=3, size=16, seed=1)
    ftr, fte = tr.images.flatten(1).float(), te.images.flatten(1).float()
    tests = [0, 2, 4]
    atts = [attribute(ftr, tr.labels, fte, te.labels, "l2knn", k=10, test_indices=tests),
            attribute(ftr, tr.labels, fte, te.labels, "l2knn", k=10, test_indices=tests, label_conditioning=False),
            random_attribution(tr.labels, te.labels, 10, test_indices=tests)]
    return attribution_explorer(tr, te, atts)


def prototype():
    from uel_helpers.data import synthetic_dataset
    from uel_helpers.protonet import make_refinement_task, protonet_settings, train_protonet
    from uel_helpers.widgets import prototype_explorer

    ds = synthetic_dataset(n_per_class=10, num_classes=4, channels=1, size=16, seed=2)
    settings = protonet_settings("smoke").with_(epochs=1, steps_per_epoch=2, train_way=3, train_shot=2,
                                                train_query=2)
    auto = train_protonet(ds, settings, seed=0, device=DEVICE, quiet=True, cache=False)
    tasks = [make_refinement_task(ds, way=3, shot=1, query=3, n_exemplars=2, bad_class=b, seed=b) for b in (0, 2)]
    return prototype_explorer(auto, tasks)


def inpainting():
    from uel_helpers.data import ImageSet
    from uel_helpers.segmentation import InpaintSettings, build_segmenter, inpainting_views, make_scenes
    from uel_helpers.widgets import inpainting_explorer

    objects = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)  # squares and bars on black, as Fashion-MNIST objects
    objects[:4, :, 4:24, 4:24] = 255
    objects[4:, :, 11:17, 2:26] = 255
    source = ImageSet(objects, torch.tensor([0] * 4 + [1] * 4), ("square", "bar"), name="shapes")
    scenes = make_scenes(source, 2, size=16, objects=(1, 2), scale=(0.5, 0.8), seed=3)
    models = {}
    for seed, name in enumerate(("standard", "SAT")):
        torch.manual_seed(seed)
        models[name] = build_segmenter("unet-lite", 3, width=4, image_size=16).eval()
    views = inpainting_views(models, scenes, sides=(4, 6), positions=("centre", "top left"),
                             settings=InpaintSettings(steps=4), saved=2, device=DEVICE)
    return inpainting_explorer(views)


def jpeg():
    from uel_helpers.data import synthetic_dataset
    from uel_helpers.editing import ProxyEditor, noise_control, proxy_settings, train_proxy_vae
    from uel_helpers.widgets import jpeg_explorer

    ds = synthetic_dataset(n_per_class=8, num_classes=4, channels=3, size=16, seed=0)
    proxy = train_proxy_vae(ds, proxy_settings("smoke").with_(epochs=1, batch_size=16, n_per_class=None), seed=0,
                            device=DEVICE, quiet=True, cache=False)
    protections = {"noise 8/255": noise_control(ds.images[:3], 8 / 255), "noise 16/255": noise_control(ds.images[:3],
                                                                                                        16 / 255)}
    return jpeg_explorer(proxy.encode_mean, ProxyEditor(proxy), protections)


BUILDERS = {"perturbation": perturbation, "dvae": dvae, "sharpen": sharpen, "attribution": attribution,
            "prototype": prototype, "inpainting": inpainting, "jpeg": jpeg}

# How a user drives each explorer, in order: (control, action). Actions: "next" (a slider one step right, or a
# dropdown's next option), "last" / "first" (a slider to its end / its start), "toggle" (a checkbox), "click" (a
# button). Each must change
# the picture, except those in `SAME_PICTURE` (turning "auto amplify" off keeps the factor in use, so the picture
# must stay as it is).
DRIVES = {
    "perturbation": [("attack", "next"), ("class", "next"), ("image", "next"), ("fft", "toggle"),
                     ("auto", "toggle"), ("amplify", "next")],
    "dvae": [("poison", "next"), ("class", "next"), ("first", "next"), ("sample", "toggle")],
    "sharpen": [("image", "next"), ("seed", "next"), ("center", "next"), ("percent", "next"), ("kernel", "next")],
    "attribution": [("test", "next"), ("top", "next"), ("conditioning", "toggle"), ("method", "next")],
    "prototype": [("episode", "next"), ("class", "next"), ("exemplar", "next"), ("alpha", "last"),
                  ("apply", "click"), ("reset", "click")],
    "inpainting": [("image", "next"), ("position", "next"), ("side", "next"), ("model", "next"), ("step", "first")],
    "jpeg": [("protection", "next"), ("image", "next"), ("quality", "next")],
}
SAME_PICTURE = {("perturbation", "auto")}
# Controls that must be disabled in the view the drives leave (they would do nothing there).
DISABLED_AT_END = {"perturbation": [], "dvae": [], "sharpen": ["seed"], "attribution": ["conditioning"],
                   "prototype": ["reset"], "inpainting": [],
                   "jpeg": []}


def build(name: str):
    """The explorer `name` on smoke data (one thread: the kernel shares two cores with the browser)."""
    torch.set_num_threads(int(os.environ.get("UEL_EXPLORER_THREADS", "1")))
    return BUILDERS[name]()


def picture_bytes(box) -> bytes:
    """The PNG shown (bytes in ipywidgets 7, a memoryview in 8)."""
    return bytes(box.controls["picture"].value)


def drive_in_kernel(name: str, box) -> list[str]:
    """Drive every control of `box` as in DRIVES through the Python side; the problems found (empty = fine)."""
    problems = []
    for control_name, action in DRIVES[name]:
        control = box.controls[control_name]
        if control.disabled:
            problems.append(f"{name}.{control_name} is disabled before '{action}'")
            continue
        before = picture_bytes(box)
        if action == "click":
            control.click()
        elif action == "toggle":
            control.value = not control.value
        elif hasattr(control, "options"):
            values = [v[1] if isinstance(v, tuple) else v for v in control.options]
            ends = {"last": values[-1], "first": values[0]}
            control.value = ends.get(action, values[(values.index(control.value) + 1) % len(values)])
        elif action in ("last", "first"):
            control.value = control.max if action == "last" else control.min
        elif type(control).__name__ == "FloatLogSlider":
            control.value = control.value * control.base ** control.step
        else:
            control.value = min(control.max, control.value + control.step)
        changed = picture_bytes(box) != before
        if changed != ((name, control_name) not in SAME_PICTURE):
            problems.append(f"{name}.{control_name} ('{action}') {'changed' if changed else 'did not change'} "
                            "the picture")
    for control_name in DISABLED_AT_END[name]:
        if not box.controls[control_name].disabled:
            problems.append(f"{name}.{control_name} does nothing here but is not disabled")
    return problems


# --- Colab's widget version, for the tests: ipywidgets 7.7.1 in a folder put first on PYTHONPATH --------------

COLAB_IPYWIDGETS = "7.7.1"
# the kernel side only: no dependency resolved, so nothing of ipywidgets 8 comes in (jupyterlab_widgets 1.1.1 is the
# 7.x frontend; without the pin pip would pull the 8.x one)
IPYWIDGETS7_PINS = ("ipywidgets==7.7.1", "widgetsnbextension==3.6.10", "jupyterlab_widgets==1.1.1",
                    "ipython_genutils==0.2.0")
# a 7.x frontend to drive in a browser: JupyterLab 3.6 with jupyterlab_widgets 1.1.1, dependencies resolved into the
# overlay (JupyterLab 3.6 cannot share a server with JupyterLab 4)
LAB3_PINS = ("jupyterlab==3.6.8", *IPYWIDGETS7_PINS)


def overlay(name: str, pins: tuple[str, ...], deps: bool) -> Path:
    """`pip install --target` of `pins` into `<UEL_TEST_OVERLAYS or ~/.cache/uel_helpers-test-overlays>/<name>-pyXY`
    (per Python version: dependencies may be compiled), made once (atomically) and reused. Raises RuntimeError when
    pip cannot (offline, no index)."""
    base = Path(os.environ.get("UEL_TEST_OVERLAYS", Path.home() / ".cache" / "uel_helpers-test-overlays"))
    name = f"{name}-py{sys.version_info.major}{sys.version_info.minor}"
    target = base / name
    stamp = target / ".pins"
    if stamp.exists() and stamp.read_text() == " ".join(pins):
        return target
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(tmp),
           *([] if deps else ["--no-deps"]), *pins]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"could not make the overlay {name} ({' '.join(pins)}): {proc.stderr[-1500:]}")
    (tmp / ".pins").write_text(" ".join(pins))
    shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:  # made meanwhile by another run
        shutil.rmtree(tmp, ignore_errors=True)
    return target
