"""A widget whose kernel is gone says so and never waits: after a kernel restart, and when the
notebook is reopened with its saved widget state. And an update the kernel refuses reverts."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

SETUP = """\
import interplab as il
view = il.TokenView(il.zoo.tiny("gpt2"), "the cat sat on the mat")
view"""


def restart_kernel(nb) -> None:
    nb.page.locator(".lm-MenuBar-item", has_text="Kernel").first.click()
    nb.page.locator(".lm-Menu-item").get_by_text("Restart Kernel…", exact=True).click()
    nb.page.locator(".jp-Dialog .jp-mod-accept").click()
    nb.wait_idle()


def hover_token(nb, index: int):
    nb.page.mouse.move(0, 0)
    nb.page.locator(".il-tokenview .il-token").nth(index).hover()
    return nb.page.locator(".il-tooltip:not([hidden])")


def test_after_a_restart_the_view_says_what_happened(notebook):
    nb = notebook("restart.ipynb", [SETUP])
    nb.run_all()
    tip = hover_token(nb, 2)
    tip.locator("table tr").nth(4).wait_for(timeout=30_000)  # live: predictions from the kernel
    banner = nb.page.locator(".il-tokenview .il-error")
    expect(banner).to_be_hidden()

    restart_kernel(nb)
    expect(banner).to_be_visible(timeout=10_000)  # at once, before any click
    expect(banner).to_contain_text("Not connected")
    expect(banner).to_contain_text("the kernel was restarted")
    expect(banner).to_contain_text("Run the cell again")
    banner.locator(".il-error-close").click()
    started = time.monotonic()
    tip = hover_token(nb, 3)
    expect(tip).to_contain_text("not available: this view has no kernel behind it", timeout=5_000)
    assert time.monotonic() - started < 5
    expect(nb.page.locator(".il-tokenview .il-progress")).to_have_class(re.compile(r"\bil-idle\b"))  # nothing pending
    assert not [c for c in nb.console if "Cannot send" in c and "pageerror" in c]


def test_a_view_from_saved_widget_state_says_it_has_no_kernel(notebook, lab):
    with lab.setting("@jupyter-widgets/jupyterlab-manager/plugin", {"saveState": True}):
        nb = notebook("saved.ipynb", [SETUP])
        nb.run_all()
        nb.page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while "application/vnd.jupyter.widget-state+json" not in (lab.root / "saved.ipynb").read_text():
            assert time.monotonic() < deadline, "the notebook was not saved with its widget state"
            time.sleep(0.3)
        nb.page.close()
        lab.shutdown_kernels_of("saved.ipynb")
        again = notebook("saved.ipynb")  # as saved: a new kernel, the old widget's state
    tokens = again.page.locator(".il-tokenview .il-token")
    expect(tokens).to_have_count(6, timeout=30_000)  # drawn from the saved state
    banner = again.page.locator(".il-tokenview .il-error")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("saved widget state")
    started = time.monotonic()
    tip = hover_token(again, 1)
    expect(tip).to_contain_text("not available", timeout=5_000)
    assert time.monotonic() - started < 5


def test_an_update_the_kernel_refuses_is_shown_and_reverted(notebook):
    cells = ["""\
import interplab as il
scanner = il.ExpertScanner(il.zoo.load("experts"), ["Q: What is 1 plus 2? A:"], ["Q: What colour is the sky? A:"],
                           classify=False, progress=False)
scanner"""]
    nb = notebook("refused.ipynb", cells)
    nb.run_all()
    select = nb.page.locator(".il-scanner .il-toolbar select").first  # the map: behaviour / control / difference
    expect(select).to_have_value("score")
    # a front end out of step with the kernel offers a map the kernel does not know
    select.evaluate("""s => { const o = document.createElement('option'); o.value = 'sideways'; o.textContent = 'x';
                              s.appendChild(o); s.value = 'sideways'; s.dispatchEvent(new Event('change')); }""")
    banner = nb.page.locator(".il-scanner .il-error")
    expect(banner).to_contain_text("expected any of ['behaviour', 'control', 'score']", timeout=30_000)
    expect(select).to_have_value("score")  # reverted to the kernel's
    assert nb.run_code("print(scanner.mode)").strip() == "score"
