"""Real-browser tests: a JupyterLab server and Debian's chromium (headless) driven by Playwright.

The ``lab`` fixture (one per session) starts ``jupyter lab`` on a free port with a temporary
notebook folder, settings and workspace (news and update checks off, notebook windowing off so
every cell stays in the DOM). Kernels run with this interpreter and import this checkout's
``src/``. ``notebook`` opens a notebook in a fresh page; a failed test leaves a screenshot in
``test-artifacts/``. ``lab.setting(plugin, values)`` changes a JupyterLab setting for the pages
opened inside the block; the ``dark`` fixture shows the test's pages in JupyterLab Dark (see
``readable.py`` for checking that widgets stay readable there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("INTERPLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
START_TIMEOUT = 120  # seconds; the machine may be busy


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    for plugin, values in SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    """A running JupyterLab: where it is, how to put notebooks in it, how to talk to its REST API."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path, settings: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log
        self.settings = settings
        self.base = f"http://127.0.0.1:{port}"

    @contextmanager
    def setting(self, plugin: str, values: dict) -> Iterator[None]:
        """JupyterLab setting ``plugin`` (e.g. ``"@jupyterlab/apputils-extension/themes"``) set to
        ``values`` for the pages opened inside the block (the server reads the file on each load)."""
        path = self.settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        before = path.read_text() if path.exists() else None
        path.write_text(json.dumps(values))
        try:
            yield
        finally:
            if before is None:
                path.unlink()
            else:
                path.write_text(before)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write code cells as ``name`` (e.g. ``"t.ipynb"``) in the notebook folder."""
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name

    def shutdown_kernels_of(self, name: str) -> None:
        for session in self.api("sessions"):
            if session.get("path") == name:
                self.api(f"sessions/{session['id']}", method="DELETE")

    def tail_log(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root, settings = base / "notebooks", base / "settings"
    root.mkdir()
    write_settings(settings)
    port, token = free_port(), "interplab-browser-tests"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["JUPYTER_CONFIG_DIR"] = str(base / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(base / "runtime")
    env.setdefault("OMP_NUM_THREADS", "2")
    log = base / "lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={base / 'workspaces'}"]
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=root, env=env)
    server = Lab(root, port, token, process, log, settings)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.tail_log()}")
            try:
                server.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT}s:\n{server.tail_log()}")
                time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's chromium (`make chromium`) or set INTERPLAB_CHROMIUM")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Notebook:
    """A notebook open in JupyterLab: run it, add and run cells, read outputs."""

    def __init__(self, lab: Lab, page, name: str):
        self.lab, self.page, self.name = lab, page, name
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    @property
    def cells(self):
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")

    @property
    def code_cells(self):
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")

    def code_cell(self, index: int):
        return self.code_cells.nth(index)

    def open(self) -> Notebook:
        # `reset`: a fresh workspace, so tabs of earlier tests do not come back
        self.page.goto(f"{self.lab.base}/lab/tree/{self.name}?reset&token={self.lab.token}")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=START_TIMEOUT * 1000)
        self.wait_idle()
        return self

    def kernel_status(self) -> str:
        """The kernel's state as the status bar shows it: "Idle", "Busy", "Initializing", ..."""
        for text in self.page.locator(".jp-StatusBar-TextItem").all_inner_texts():
            match = re.search(r"\|\s*(\w+)\s*$", text)
            if match:
                return match.group(1)
        return "Unknown"

    def wait_idle(self, timeout: float = 180) -> None:
        """Until the kernel has started and is idle, and no cell waits to run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.page.locator(".jp-InputPrompt", has_text="[*]").count()
            if not busy and self.kernel_status() == "Idle":
                return
            time.sleep(0.3)
        raise TimeoutError(f"the kernel was not idle after {timeout}s (status: {self.kernel_status()})")

    def run_all(self, timeout: float = 240) -> None:
        self.cells.first.click()
        self.page.keyboard.press("Escape")
        self.page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        self.page.locator(".lm-Menu-item").get_by_text("Run All Cells", exact=True).click()
        count = self.code_cells.count()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prompts = self.code_cells.locator(".jp-InputPrompt").all_inner_texts()
            if len(prompts) == count and all(re.search(r"\[\d+\]", p) for p in prompts):
                break
            time.sleep(0.3)
        else:
            raise TimeoutError(f"cells did not all run within {timeout}s")
        self.wait_idle(timeout)
        self.raise_on_error_output()

    def raise_on_error_output(self) -> None:
        errors = self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        if tracebacks:
            raise AssertionError("a cell failed:\n" + "\n".join(tracebacks))

    def output(self, index: int) -> str:
        """The text output of code cell ``index``."""
        return "\n".join(self.code_cell(index).locator(".jp-OutputArea-output").all_inner_texts())

    def run_code(self, code: str, timeout: float = 120) -> str:
        """Add a code cell at the end, run it, return its text output."""
        n = self.code_cells.count()
        self.code_cell(n - 1).locator(".jp-InputArea").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")
        editor = self.code_cell(n).locator(".cm-content")
        editor.click()
        self.page.keyboard.insert_text(code)
        self.page.keyboard.press("Shift+Enter")
        prompt = self.code_cell(n).locator(".jp-InputPrompt")
        deadline = time.monotonic() + timeout
        while not re.search(r"\[\d+\]", prompt.inner_text()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {code!r} did not run within {timeout}s")
            time.sleep(0.2)
        self.wait_idle(timeout)
        return self.output(n)


@pytest.fixture
def notebook(request, lab, browser) -> Iterator[callable]:
    """``notebook("name.ipynb", [cells...])`` writes the notebook and opens it in a new page
    (``notebook("name.ipynb")`` opens it as it is on disk, e.g. as a cell saved it)."""
    opened: list[Notebook] = []
    context = browser.new_context(viewport={"width": 1300, "height": 900})

    def open_notebook(name: str, cells: list[str] | None = None) -> Notebook:
        if cells is not None:
            lab.write_notebook(name, cells)
        nb = Notebook(lab, context.new_page(), name)
        opened.append(nb)
        return nb.open()

    yield open_notebook
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for k, nb in enumerate(opened):
            stem = f"{request.node.name}-{k}"
            nb.page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.console.txt").write_text("\n".join(nb.console))
        shutil.copy(lab.log, ARTIFACTS / f"{request.node.name}-lab.log")
    context.close()
    for nb in opened:
        lab.shutdown_kernels_of(nb.name)


@pytest.fixture
def dark(lab) -> Iterator[None]:
    """The test's pages show JupyterLab Dark."""
    with lab.setting("@jupyterlab/apputils-extension/themes", {"theme": "JupyterLab Dark"}):
        yield
