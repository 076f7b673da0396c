"""Every explorer in a real browser: headless Chromium drives JupyterLab with each widget frontend.

One test per widget frontend (marker `browser`): JupyterLab 4 with this venv's ipywidgets 8 (in `make test`, about
2 minutes), and JupyterLab 3.6 with Colab's ipywidgets 7.7.1 (jupyterlab_widgets 1.1.1, from a `pip install --target`
overlay made once into UEL_TEST_OVERLAYS, see tests/explorer_cases.py; marked `slow` as well, so it runs in
`make test-slow` and `make test-browser`: two JupyterLab sessions do not fit CI's 3-minute budget for this test, and
Colab's kernel side is checked in `make test` by tests/test_widgets_colab.py). Each starts JupyterLab on 127.0.0.1
with a token, in its own config/settings/runtime folders, with this venv's Python as the kernel; opens a generated
notebook that builds every explorer of `uel_helpers.widgets.EXPLORERS` on smoke data (tests/explorer_cases.py); waits
for each to render (a widget, not "Error displaying widget" nor a text form); checks that the picture is shown at its
natural size (ipywidgets stretches an `Image` to the output's width unless told not to) and that the whole view fits
a 1366 x 768 screen; saves a screenshot of each explorer at 1366 x 768 under `results/browser/<frontend>/` (a CI
artefact; `results/` is git-ignored); then moves every slider, dropdown, checkbox and button as a user would,
through the DOM, and checks that the picture's bytes change (tests/explorer_cases.py: DRIVES). It stops the server
by its PID (its process group: the server and its kernel).

Needs Chromium + chromedriver (Debian: `apt-get install chromium chromium-driver`, done by .ci/run) and the `browser`
extra (`pip install -e ".[browser]"`: JupyterLab 4, Selenium). Skipped where they are missing, unless
UEL_REQUIRE_BROWSER=1 (CI), which makes a missing piece a failure. UEL_BROWSER_WITHOUT_WIDGETS=1 starts JupyterLab
with the widget extension disabled: the test must then fail ("... shows as text, not as a widget"), as it did for
both frontends when this was checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import explorer_cases
from uel_helpers.widgets import EXPLORERS, PICTURE_MAX_PX, VIEW_MAX_PX

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SCREENSHOTS = ROOT / "results" / "browser"
SCREEN = (1366, 768)
WIDGET_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
REQUIRED = os.environ.get("UEL_REQUIRE_BROWSER") == "1"
# The two widget frontends: this venv's JupyterLab 4 with ipywidgets 8, and Colab's ipywidgets 7.7.1 with its 7.x
# frontend (JupyterLab 3.6 + jupyterlab_widgets 1.1.1 in an overlay put first on PYTHONPATH for server and kernel).
FRONTENDS = {"jupyterlab4-ipywidgets8": None, "jupyterlab3-ipywidgets7": "jupyterlab-3.6-ipywidgets-7.7.1"}


def _missing(what: str):
    if REQUIRED:
        pytest.fail(f"UEL_REQUIRE_BROWSER=1 but {what}", pytrace=False)
    pytest.skip(what)


def _tools() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips (or fails under UEL_REQUIRE_BROWSER=1) when a piece is missing."""
    for module, extra in (("selenium", "selenium"), ("jupyterlab", "jupyterlab>=4")):
        try:
            __import__(module)
        except ImportError:
            _missing(f"{module} is not installed (pip install -e '.[browser]' installs {extra})")
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                              else None)
    if not chromium or not driver:
        _missing("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    return chromium, driver


def test_every_explorer_has_a_smoke_case():
    """A new explorer joins the browser and ipywidgets-7.7.1 tests by a builder in tests/explorer_cases.py."""
    assert set(explorer_cases.BUILDERS) == set(EXPLORERS) == set(explorer_cases.DRIVES), (
        f"explorers {sorted(EXPLORERS)}, smoke builders {sorted(explorer_cases.BUILDERS)}, drives "
        f"{sorted(explorer_cases.DRIVES)}: add the missing ones to tests/explorer_cases.py")


# The pure render function each explorer draws with: a notebook calls it (and plt.show()) before opening the explorer
RENDERERS = {"perturbation": "render_perturbation", "dvae": "render_dvae_view", "sharpen": "render_sharpen_view",
             "attribution": "render_attribution", "prototype": "render_prototype_path", "inpainting": "render_view",
             "jpeg": "render_jpeg_view"}
# Explorers no notebook opens (yet): notebook 08 shows the JPEG explorer's figure statically (its section 10)
NOT_OPENED: set[str] = set()


def test_notebooks_show_a_static_view_before_each_explorer():
    """An executed or shared notebook shows a picture where the explorer needs a kernel: before each explorer call,
    its render function is called and shown (plt.show()), in that cell or an earlier one."""
    from uel_helpers.notebook_sync import notebook_from_py, notebook_sources

    assert set(RENDERERS) == set(EXPLORERS)
    found = 0
    for py in notebook_sources(ROOT / "notebooks"):
        code = [c.source for c in notebook_from_py(py).cells if c.cell_type == "code"]
        for i, src in enumerate(code):
            for kind, explorer in EXPLORERS.items():
                call = f"\n{explorer.__name__}("
                if call not in "\n" + src:
                    continue
                found += 1
                before = "\n".join(code[:i]) + "\n" + ("\n" + src).split(call)[0]
                shown = before.rfind(f"{RENDERERS[kind]}(")
                assert shown >= 0 and "plt.show()" in before[shown:], (
                    f"{py.name}: `{explorer.__name__}(...)` is not preceded by its static view: call "
                    f"{RENDERERS[kind]}(...) and plt.show() before it, in that cell or an earlier one")
    assert found >= len(set(EXPLORERS) - NOT_OPENED), f"only {found} explorer calls found in the notebooks"


# --- the real browser ----------------------------------------------------------------------------------------

def _notebook(path: Path) -> None:
    """A notebook that builds every explorer, one per cell."""
    import nbformat

    cells = [nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport explorer_cases\n"
                                       "import ipywidgets\nprint('IPYWIDGETS=' + ipywidgets.__version__)")]
    cells += [nbformat.v4.new_code_cell(f"explorer_cases.build({name!r})") for name in explorer_cases.BUILDERS]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _settings(folder: Path, without_widgets: bool, overlay: Path | None) -> dict:
    """JupyterLab's own folders (nothing of the user's is read or written) and its settings for the test."""
    dirs = {name: folder / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True)
    user = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    if not overlay:  # JupyterLab 4 only: every output stays in the DOM
        user["@jupyterlab/notebook-extension/tracker"] = {"windowingMode": "none"}
    for plugin, values in user.items():
        target = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    disabled = {WIDGET_EXTENSION: True} if without_widgets else {}
    if overlay:  # JupyterLab 3.6 sees only the overlay's extensions (this venv's are built for JupyterLab 4)
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(
            {"LabApp": {"labextensions_path": [str(overlay / "share" / "jupyter" / "labextensions")]}}))
    if disabled:
        (dirs["config"] / "labconfig").mkdir()
        (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
    env = {} if overlay is None else {
        "PYTHONPATH": os.pathsep.join([str(overlay), str(TESTS)]),  # server and kernel: JupyterLab 3.6, ipywidgets 7
        "JUPYTER_PATH": str(overlay / "share" / "jupyter"),  # its jupyterlab_widgets 1.1.1 frontend comes first
        "JUPYTERLAB_DIR": str(overlay / "share" / "jupyter" / "lab")}
    return {**env, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "IPYTHONDIR": str(dirs["ipython"])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Lab:
    """JupyterLab on 127.0.0.1 with a token, started in its own process group and stopped by its PID."""

    def __init__(self, folder: Path, without_widgets: bool, overlay: Path | None):
        self.port, self.token = _free_port(), hashlib.sha256(os.urandom(16)).hexdigest()[:32]
        env = {**os.environ, "PYTHONPATH": str(TESTS), **_settings(folder / "jupyter", without_widgets, overlay),
               "UEL_CACHE": str(folder / "cache"), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
        env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as a user has it
        self.log = open(folder / "jupyterlab.log", "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
             *([] if overlay else ["--LabApp.extension_manager=readonly"]),  # JupyterLab 4 only: no PyPI lookups
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.log_path = folder / "jupyterlab.log"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"JupyterLab did not start:\n{self.log_path.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started (its process group)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def _chrome(chromium: str, driver_path: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", f"--window-size={SCREEN[0]},{SCREEN[1]}", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": SCREEN[0], "height": SCREEN[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


def _wait(what: str, condition, timeout: float, diagnose=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}. {diagnose()}", pytrace=False)
        time.sleep(0.2)


PICTURE_HASH_JS = """
const [selector, done] = arguments;
const img = document.querySelector(selector);
if (!img || !img.src) { done(null); return; }
fetch(img.src).then(r => r.arrayBuffer()).then(buf => crypto.subtle.digest('SHA-256', buf)).then(d => {
  done(Array.from(new Uint8Array(d)).map(b => b.toString(16).padStart(2, '0')).join(''));
}).catch(e => done('error: ' + e));
"""

GEOMETRY_JS = """
const box = document.querySelector(arguments[0]);
const img = box.querySelector('img.uel-picture, .uel-picture img, img');
const b = box.getBoundingClientRect(), r = img.getBoundingClientRect();
return {box: [b.left, b.top, b.width, b.height], shown: [r.width, r.height], natural: [img.naturalWidth,
        img.naturalHeight], viewport: [window.innerWidth, window.innerHeight], dpr: window.devicePixelRatio};
"""


def _outputs_text(driver) -> str:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText).join('\\n---\\n')")


def _control(driver, kind: str, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f".uel-explorer-{kind} .uel-control-{name}")


def _act(driver, kind: str, name: str, action: str) -> None:
    """Move one control as a user does: a dropdown's next option (or its last/first), a slider one step (arrow key)
    or to an end (End / Home key), a click on a checkbox or a button."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    el = _control(driver, kind, name)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    selects = el.find_elements(By.TAG_NAME, "select")
    if selects:
        select = Select(selects[0])
        options = select.options
        current = next(i for i, o in enumerate(options) if o.is_selected())
        ends = {"last": len(options) - 1, "first": 0}
        select.select_by_index(ends.get(action, (current + 1) % len(options)))
        return
    handles = el.find_elements(By.CSS_SELECTOR, ".noUi-handle, .ui-slider-handle")
    if handles:
        handles[0].click()
        handles[0].send_keys({"last": Keys.END, "first": Keys.HOME}.get(action, Keys.ARROW_RIGHT))
        return
    boxes = el.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")
    if boxes:
        boxes[0].click()
        return
    el.click()  # a button is the element itself


def _disabled(driver, kind: str, name: str) -> bool:
    return bool(driver.execute_script(
        "const el = arguments[0];"
        "const off = '[disabled], .mod-disabled, .ui-slider-disabled, .ui-state-disabled';"
        "return el.matches(off) || !!el.querySelector('select:disabled, input:disabled, button:disabled, ' + off);",
        _control(driver, kind, name)))


@pytest.mark.browser
@pytest.mark.parametrize("frontend", [pytest.param(f, marks=[pytest.mark.slow] if overlay else [])
                                      for f, overlay in FRONTENDS.items()])
def test_every_explorer_renders_fits_the_screen_and_responds_in_jupyterlab(frontend, tmp_path):
    chromium, driver_path = _tools()
    overlay = None
    if not FRONTENDS[frontend]:
        import ipywidgets

        if not ipywidgets.__version__.startswith("8."):  # e.g. .venv-colab: its 7.7.1 is the other frontend's case
            pytest.skip(f"this venv has ipywidgets {ipywidgets.__version__}, not 8")
    else:
        try:
            overlay = explorer_cases.overlay(FRONTENDS[frontend], explorer_cases.LAB3_PINS, deps=True)
        except RuntimeError as err:
            _missing(str(err))
    without_widgets = os.environ.get("UEL_BROWSER_WITHOUT_WIDGETS") == "1"
    _notebook(tmp_path / "explorers.ipynb")
    shots = SCREENSHOTS / frontend
    shots.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    lab = _Lab(tmp_path, without_widgets, overlay)
    driver = None
    try:
        driver = _chrome(chromium, driver_path)
        driver.set_script_timeout(30)
        driver.get(f"{lab.url}/lab/tree/explorers.ipynb?token={lab.token}")

        def diagnose() -> str:
            return (f"outputs:\n{_outputs_text(driver)[:2000]}\nserver log:\n"
                    f"{lab.log_path.read_text()[-2000:]}")

        _wait("the notebook and its kernel", lambda: driver.execute_script(
            "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            "return !!(k && k.status === 'idle' && document.querySelector('.jp-Notebook'));"), 90, diagnose)
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        for kind in explorer_cases.BUILDERS:
            def rendered(kind=kind):
                errors = driver.execute_script(
                    "return Array.from(document.querySelectorAll("
                    "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
                    ".map(e => e.innerText).join('\\n')")
                text = _outputs_text(driver)
                if "Error displaying widget" in text or "Traceback" in errors or "Error" in errors:
                    pytest.fail(f"{kind} explorer: {diagnose()}", pytrace=False)
                if f"[{kind} explorer: live widget" in text:  # the text form: no widget frontend in this JupyterLab
                    pytest.fail(f"the {kind} explorer shows as text, not as a widget (is the widget extension "
                                f"{WIDGET_EXTENSION} installed and enabled?). {diagnose()}", pytrace=False)
                return driver.execute_script(
                    "const img = document.querySelector(arguments[0]);"
                    "return !!(img && img.complete && img.naturalWidth > 0);",
                    f".uel-explorer-{kind} img")
            _wait(f"the {kind} explorer to render (a widget with its picture)", rendered, 120, diagnose)
        text = _outputs_text(driver)
        assert "Error displaying widget" not in text and "VBox(" not in text and "live widget" not in text, text
        expected = explorer_cases.COLAB_IPYWIDGETS if overlay else "8."
        assert f"IPYWIDGETS={expected}" in text, f"the kernel runs another ipywidgets than {expected}: {text[:300]}"
        t_rendered = time.monotonic() - t0

        problems = []
        # JupyterLab as it opens (file browser on the left): a picture wider than the output may shrink to fit,
        # never stretch, and keeps its aspect ratio
        for kind in explorer_cases.BUILDERS:
            g = driver.execute_script(GEOMETRY_JS, f".uel-explorer-{kind}")
            (shown_w, shown_h), (nat_w, nat_h) = g["shown"], g["natural"]
            if shown_w > nat_w + 1.5 or abs(shown_w / shown_h - nat_w / nat_h) > 0.02:
                problems.append(f"{kind}, file browser open: picture shown at {shown_w:.0f}x{shown_h:.0f} CSS px, "
                                f"natural size {nat_w}x{nat_h} (stretched or distorted)")
        # the laptop view: side bar closed, 1366 x 768; every picture at its natural size, every view on screen
        driver.execute_script("window.jupyterapp.shell.collapseLeft()")
        for kind in explorer_cases.BUILDERS:
            box = f".uel-explorer-{kind}"
            driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", box)
            time.sleep(0.3)
            g = driver.execute_script(GEOMETRY_JS, box)
            driver.save_screenshot(str(shots / f"{kind}.png"))
            (shown_w, shown_h), (nat_w, nat_h) = g["shown"], g["natural"]
            if abs(shown_w - nat_w) > 1.5 or abs(shown_h - nat_h) > 1.5:
                problems.append(f"{kind}: picture shown at {shown_w:.0f}x{shown_h:.0f} CSS px, natural size "
                                f"{nat_w}x{nat_h} (stretched or squeezed)")
            if nat_w > PICTURE_MAX_PX[0] or nat_h > PICTURE_MAX_PX[1]:
                problems.append(f"{kind}: picture {nat_w}x{nat_h} px is larger than {PICTURE_MAX_PX}")
            _, top, width, height = g["box"]
            if width > VIEW_MAX_PX[0] + 1 or height > VIEW_MAX_PX[1] + 1:
                problems.append(f"{kind}: the view is {width:.0f}x{height:.0f} CSS px, more than {VIEW_MAX_PX}")
            if top + height > g["viewport"][1] + 1:
                problems.append(f"{kind}: scrolled to its top, the view ends at {top + height:.0f} px, below the "
                                f"{g['viewport'][1]} px screen: controls and picture are not visible together")
            print(f"{kind}: view {width:.0f}x{height:.0f} at top {top:.0f}, picture {nat_w}x{nat_h} shown "
                  f"{shown_w:.0f}x{shown_h:.0f}")

        for kind, steps in explorer_cases.DRIVES.items():
            picture = f".uel-explorer-{kind} img"
            for name, action in steps:
                if _disabled(driver, kind, name):
                    problems.append(f"{kind}.{name} is disabled before '{action}'")
                    continue
                before = driver.execute_async_script(PICTURE_HASH_JS, picture)
                _act(driver, kind, name, action)
                if (kind, name) in explorer_cases.SAME_PICTURE:
                    time.sleep(1.5)
                    if driver.execute_async_script(PICTURE_HASH_JS, picture) != before:
                        problems.append(f"{kind}.{name} ('{action}') changed the picture; it should keep it")
                    continue
                deadline = time.monotonic() + 30
                while driver.execute_async_script(PICTURE_HASH_JS, picture) == before:
                    if time.monotonic() > deadline:
                        problems.append(f"{kind}.{name} ('{action}') did not change the picture within 30 s")
                        break
                    time.sleep(0.2)
            for name in explorer_cases.DISABLED_AT_END[kind]:
                if not _disabled(driver, kind, name):
                    problems.append(f"{kind}.{name} does nothing in this view but is not disabled")
            info = driver.execute_script("return document.querySelector(arguments[0]).innerText",
                                         f".uel-explorer-{kind} .uel-info")
            if "error" in info.lower():
                problems.append(f"{kind}: the info line reports {info!r}")
        elapsed = time.monotonic() - t0
        print(f"browser test ({frontend}): explorers rendered after {t_rendered:.1f} s, all controls driven after "
              f"{elapsed:.1f} s; screenshots in {shots}")
        assert not problems, "\n".join(problems)
    finally:
        if driver is not None:
            driver.quit()
        lab.stop()
