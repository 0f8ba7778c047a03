"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a JupyterLab server on
127.0.0.1 without a token in a temporary folder, and a small prepared run folder.

Nothing is downloaded: Playwright is pointed at the system Chromium. Every process started here
is stopped at teardown (the server and its kernels by process group, the browser by Playwright).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-breakpad", "--disable-crash-reporter"]
SERVER_START_S = 90  # bound on JupyterLab answering /api/status
# Lab settings: every cell stays in the page (no windowing), no news or update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def chromium_executable() -> tuple[str | None, str]:
    """(path, reason): the system Chromium, or None and one line saying why not."""
    explicit = os.environ.get("MEDSYN_CHROMIUM")
    if explicit:
        return (explicit, "") if os.access(explicit, os.X_OK) else (
            None, f"MEDSYN_CHROMIUM={explicit} is not an executable")
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path, ""
    return None, ("no Chromium on PATH: install it (apt-get install chromium; `make test` does "
                  "this as root) or set MEDSYN_CHROMIUM")


@pytest.fixture(scope="session")
def chromium() -> str:
    path, reason = chromium_executable()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser_context(chromium, tmp_path_factory):
    """A headless Chromium with a fresh profile; closed at teardown."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[browser]' (make test does)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1800})
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group), politely first."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """The folder JupyterLab serves (the tests copy notebooks into it)."""
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="module")
def jupyter_lab(lab_root, tmp_path_factory):
    """JupyterLab on 127.0.0.1 at a free port, no token, serving ``lab_root``; its URL."""
    pytest.importorskip("jupyterlab")
    home = tmp_path_factory.mktemp("jupyter-home")
    settings = home / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value), encoding="utf-8")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "server.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
         "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--ServerApp.root_dir={lab_root}", "--LabApp.news_url=None",
         "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=lab_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _answering(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (home / "server.log").read_text(encoding="utf-8")[-2000:]
                pytest.fail(f"JupyterLab did not answer at {url} within {SERVER_START_S} s:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)
        log.close()
