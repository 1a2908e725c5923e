"""Notebook 04's mask viewers in a real browser: JupyterLab + headless Chromium driven by Playwright.

The test copies ``notebooks/04_reasonseg_eval.ipynb`` into a temporary root (the notebook writes its
synthetic data next to itself), starts JupyterLab there on 127.0.0.1 with a known token, opens the notebook
at a 1280 x 800 viewport, runs all cells (Run menu), and then uses both viewers as a reader would: it moves
the sample and threshold sliders, switches models and drawing modes, types a query and presses Enter.
Each step must change the picture (compared pixel by pixel on element screenshots), and the controls and
the picture must be on screen together. Screenshots go to ``$LISALIB_SCREENSHOTS`` (default
``/tmp/lisalib-browser``), their paths are printed. The server (and its kernel) is stopped at the end, also
on failure.

Skipped, with the reason, when Playwright, JupyterLab or Chromium is missing (``.ci/run`` installs
Chromium). ``LISALIB_CHROMIUM`` names another browser binary, ``LISALIB_BROWSER_NOTEBOOK`` another notebook
(one that shows ``mask_browser`` and ``query_box`` the same way), ``LISALIB_BROWSER_TIMEOUT`` the seconds
allowed for running all cells (default 1500; notebook 04 takes 2-3 min on a free CPU).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = Path(os.environ.get("LISALIB_BROWSER_NOTEBOOK", REPO / "notebooks" / "04_reasonseg_eval.ipynb"))
CHROMIUM = os.environ.get("LISALIB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("LISALIB_SCREENSHOTS", "/tmp/lisalib-browser"))
RUN_TIMEOUT_S = float(os.environ.get("LISALIB_BROWSER_TIMEOUT", "1500"))
VIEWPORT = {"width": 1280, "height": 800}
TOKEN = "lisalib-browser-test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed (pip install jupyterlab)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LISALIB_CHROMIUM)"
    if not NOTEBOOK.is_file():
        return f"{NOTEBOOK} is missing"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """Lab settings for a quiet, deterministic page: no news or update toasts, every cell in the DOM."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _api(base: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of the notebook from a fresh root; yields its base URL and root."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    home = root / ".jupyter-home"
    _write_settings(home / "settings")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("[0-9][0-9]_*.png"):  # this run's screenshots only
        old.unlink()
    port = _free_port()
    env = dict(os.environ, LISALIB_PROFILE="tiny", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1", TQDM_DISABLE="1", JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               IPYTHONDIR=str(home / "ipython"))
    env.pop("MPLBACKEND", None)  # the notebook's %matplotlib inline decides
    env.pop("LISALIB_REPORT", None)
    log_path = SHOTS / "jupyterlab.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
         "--ServerApp.password=", "--allow-root", "--LabApp.extension_manager=readonly", "--LabApp.news_url=", "--ServerApp.terminals_enabled=False"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                _api(base, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer in 90 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"base": base, "root": root, "log": log_path}
    finally:
        try:  # kernels first, so none outlives the server
            for kernel in _api(base, "/api/kernels") or []:
                _api(base, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()


def _pixels(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def _wait_change(page, locator, before: np.ndarray, what: str, timeout_s: float = 30.0) -> np.ndarray:
    """Poll the element's screenshot until it differs from ``before``; return the new pixels."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = _pixels(locator)
        if now.shape != before.shape or (now != before).any(axis=-1).mean() > 0.001:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the picture did not change after {what} ({timeout_s:.0f} s)")
        page.wait_for_timeout(250)


def _changed_share(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if a.shape != b.shape else float((a != b).any(axis=-1).mean())


def _drag(page, handle, dx: float) -> None:
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=10)
    page.mouse.up()


def _in_view(page, *locators) -> list[dict]:
    """Bounding boxes (viewport px) of the elements; each must lie inside the 1280 x 800 viewport and inside
    the notebook's visible area (below its toolbar, above the status bar)."""
    area = page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer, .jp-NotebookPanel .jp-Notebook").first
    frame = area.bounding_box()
    left, top = max(0.0, frame["x"]), max(0.0, frame["y"])
    right = min(float(VIEWPORT["width"]), frame["x"] + frame["width"])
    bottom = min(float(VIEWPORT["height"]), frame["y"] + frame["height"])
    boxes = []
    for locator in locators:
        box = locator.bounding_box()
        assert box is not None, f"{locator} is not rendered"
        inside = (box["x"] >= left - 1 and box["y"] >= top - 1 and box["x"] + box["width"] <= right + 1
                  and box["y"] + box["height"] <= bottom + 1)
        assert inside, (f"{locator} at {box} is not inside the notebook's visible area "
                        f"x {left:.0f}-{right:.0f}, y {top:.0f}-{bottom:.0f} of the {VIEWPORT['width']}x"
                        f"{VIEWPORT['height']} viewport")
        boxes.append(box)
    return boxes


def _scroll_to_top(locator) -> None:
    locator.evaluate("element => element.scrollIntoView({block: 'start'})")
    locator.page.wait_for_timeout(300)


def _menu(page, menu: str, *commands: str) -> None:
    """Click ``menu`` in the top bar, then its first item bound to one of ``commands``."""
    page.locator("#jp-top-panel .lm-MenuBar-item", has_text=menu).first.click()
    page.locator(", ".join(f".lm-Menu-item[data-command='{c}']" for c in commands)).first.click()


def _shot(page, name: str, saved: list) -> None:
    path = SHOTS / f"{len(saved):02d}_{name}.png"
    page.screenshot(path=str(path))
    saved.append(path)


def test_mask_viewers_in_jupyterlab(lab, capsys):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    saved: list[Path] = []
    console: list[str] = []
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK.name}?token={TOKEN}", timeout=120_000)
            page.locator(".jp-NotebookPanel").first.wait_for(timeout=120_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            # the kernel must be up before Run All; otherwise the first cells queue behind its start
            page.wait_for_function(
                "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                " return s && s.getAttribute('data-status') === 'idle'; }", timeout=180_000)
            _shot(page, "opened", saved)
            before = page.locator(".jp-CodeCell", has_text=re.compile(r"=\s*mask_browser\(")).first
            try:  # what a reader sees before running: the saved outputs (a static picture)
                before.wait_for(timeout=15_000)
                _scroll_to_top(before)
                _shot(page, "browser_before_running", saved)
            except PlaywrightTimeout:
                pass

            _menu(page, "Edit", "editmenu:clear-all", "notebook:clear-all-cell-outputs")
            for attempt in range(3):  # a Run All sent while the kernel connection settles can be dropped
                _menu(page, "Run", "runmenu:run-all", "notebook:run-all-cells")
                try:
                    page.wait_for_function(
                        "() => { const p = document.querySelector('.jp-CodeCell .jp-InputArea-prompt');"
                        " return p && /\\[(\\*|\\d+)\\]/.test(p.textContent); }", timeout=20_000)
                    break
                except PlaywrightTimeout:
                    if attempt == 2:
                        raise
            page.wait_for_function(
                "() => { const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];"
                " return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }",
                timeout=RUN_TIMEOUT_S * 1000, polling=2000)
            run_s = time.monotonic() - started
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, f"a cell raised:\n{errors.first.inner_text()[:2000]}"

            # ----- the mask browser -----
            viewer = page.locator(".lisalib-mask-browser").first
            viewer.wait_for(timeout=60_000)
            _scroll_to_top(viewer)
            picture = viewer.locator(".lisalib-picture")
            controls = viewer.locator(".lisalib-controls")
            picture.wait_for()
            page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=picture.element_handle())
            control_box, picture_box = _in_view(page, controls, picture)
            assert picture_box["width"] >= 380 and picture_box["height"] >= 380, (
                f"the picture is {picture_box['width']:.0f}x{picture_box['height']:.0f} px, too small to read: "
                "notebook 04 should call mask_browser(samples, results) without zoom= (512 px for 128 px images)")
            natural = picture.evaluate("e => [e.naturalWidth, e.naturalHeight]")
            assert abs(picture_box["width"] - natural[0]) <= 1, (picture_box, natural)  # shown at its own size
            legend_box, caption_box = _in_view(page, viewer.locator(".lisalib-legend"), viewer.locator(".lisalib-caption"))
            boxes = {"controls": control_box, "caption": caption_box, "picture": picture_box, "legend": legend_box}
            _shot(page, "browser_first", saved)
            pixels = _pixels(picture)

            _drag(page, viewer.locator(".lisalib-sample .noUi-handle, .lisalib-sample .ui-slider-handle").first, 60)
            pixels = _wait_change(page, picture, pixels, "dragging the sample slider")
            viewer.locator(".lisalib-next").click()
            pixels = _wait_change(page, picture, pixels, "clicking next")
            caption = viewer.locator(".lisalib-caption").inner_text()
            assert "IoU" in caption, caption
            _shot(page, "browser_sample", saved)

            _drag(page, viewer.locator(".lisalib-threshold .noUi-handle, .lisalib-threshold .ui-slider-handle").first,
                  -25)
            pixels = _wait_change(page, picture, pixels, "dragging the threshold slider")
            readout = viewer.locator(".lisalib-threshold .widget-readout").first.inner_text().strip()
            assert readout not in ("0.00", "0"), readout
            # the picture changes at the drag's first value; the caption follows the slider's last one a little later
            deadline = time.monotonic() + 15
            while True:
                readout = viewer.locator(".lisalib-threshold .widget-readout").first.inner_text().strip()
                caption = viewer.locator(".lisalib-caption").inner_text()
                if f"logit > {float(readout.replace(chr(0x2212), '-')):g}" in caption or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(250)
            assert f"logit > {float(readout.replace(chr(0x2212), '-')):g}" in caption, (readout, caption)
            _shot(page, "browser_threshold", saved)

            models = viewer.locator(".lisalib-model button")
            assert models.count() >= 2, ("the browser shows one model: notebook 04 should call "
                                         "mask_browser(samples, {'vlm': ..., 'dual': ...})")
            models.nth(1).click()
            pixels = _wait_change(page, picture, pixels, "switching the model")
            assert models.nth(1).inner_text().strip() in viewer.locator(".lisalib-caption").inner_text()
            _shot(page, "browser_model", saved)

            fill = pixels
            viewer.locator(".lisalib-draw button", has_text="outline").click()
            pixels = _wait_change(page, picture, pixels, "switching to outlines")
            assert _changed_share(fill, pixels) > 0.3  # a visible change, not a few pixels
            _shot(page, "browser_outline", saved)
            viewer.locator(".lisalib-mask-mode button", has_text="heatmap").click()
            pixels = _wait_change(page, picture, pixels, "switching to the heatmap")
            assert "sigmoid" in viewer.locator(".lisalib-legend").inner_text()
            _shot(page, "browser_heatmap", saved)

            where = viewer.locator(".lisalib-where")
            viewer.locator(".lisalib-sort select").select_option(label="IoU descending")
            handle = viewer.locator(".lisalib-sample .noUi-handle, .lisalib-sample .ui-slider-handle").first
            for attempt in range(4):  # the kernel's answer to the re-sort can land after a drag and undo it
                _drag(page, handle, -600)
                try:
                    page.wait_for_function("e => e.innerText.includes('\u00b7 1 of')", arg=where.element_handle(),
                                           timeout=15_000)
                    break
                except PlaywrightTimeout:
                    if attempt == 3:
                        raise
            _in_view(page, controls, picture)  # still on one screen
            _shot(page, "browser_sorted", saved)

            # ----- your own query -----
            box = page.locator(".lisalib-query-box").first
            _scroll_to_top(box)
            box_picture = box.locator(".lisalib-picture")
            query = box.locator(".lisalib-query input")
            _in_view(page, box.locator(".lisalib-controls"), box_picture, query)
            fits = query.evaluate(
                "e => { const s = getComputedStyle(e); const c = document.createElement('canvas').getContext('2d');"
                " c.font = s.font; return [c.measureText(e.placeholder).width,"
                " e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)]; }")
            assert fits[0] <= fits[1], f"the placeholder needs {fits[0]:.0f} px, the box has {fits[1]:.0f} px"
            _shot(page, "query_empty", saved)
            pixels = _pixels(box_picture)
            query.fill("which shape would roll down a hill?")
            query.press("Enter")
            pixels = _wait_change(page, box_picture, pixels, "asking a query", timeout_s=120)
            assert "roll down a hill" in box.locator(".lisalib-caption").inner_text()
            _shot(page, "query_asked", saved)
            box_models = box.locator(".lisalib-model button")
            if box_models.count() >= 2:
                box_models.nth(1).click()
                page.wait_for_function(
                    "([e, name]) => e.innerText.includes('model ' + name)",
                    arg=[box.locator(".lisalib-caption").element_handle(), box_models.nth(1).inner_text().strip()],
                    timeout=120_000)
                pixels = _wait_change(page, box_picture, pixels, "switching the query box's model", timeout_s=120)
                _shot(page, "query_other_model", saved)
            box.locator(".lisalib-image-picker select").select_option(index=1)
            pixels = _wait_change(page, box_picture, pixels, "picking another image", timeout_s=120)
            box.locator(".lisalib-draw button", has_text="outline").click()
            pixels = _wait_change(page, box_picture, pixels, "switching the query box to outlines")
            _shot(page, "query_outline", saved)
        finally:
            (SHOTS / "console.log").write_text("\n".join(console))
            browser.close()
            with capsys.disabled():
                print(f"\nbrowser test: {time.monotonic() - started:.0f} s; screenshots:")
                for path in saved:
                    print(f"  {path}")
    with capsys.disabled():
        print(f"  (all cells ran in {run_s:.0f} s; server log {lab['log']})")
        for name, b in boxes.items():
            print(f"  mask browser {name}: x {b['x']:.0f}-{b['x'] + b['width']:.0f}, "
                  f"y {b['y']:.0f}-{b['y'] + b['height']:.0f} ({b['width']:.0f}x{b['height']:.0f} px)")
