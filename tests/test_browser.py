"""What a person sees in a browser: a notebook run by hand in `tulu-repro lab`, and a run's report.

Driven by Playwright on the machine's own Chromium (`playwright install` is never needed): the
browser tests skip, saying why, without the ``playwright`` package or a chromium/chrome on PATH
(``scripts/setup.sh`` installs both where it can). The last test needs neither.
"""

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import test_lab
from test_lab import TOKEN

lab_server = test_lab.lab_server  # the fixture: the server `tulu-repro lab` starts, on a copy
REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
KERNEL = "tulu-repro (.venv)"  # scripts/setup.sh installs it; the notebooks' headers name it
# Run All of 01_data on the smoke params: about 20 s on 2 CPU cores (under papermill: 22 s)
RUN_ALL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", exc_type=ImportError, reason="playwright is not "
                                   "installed (pip install playwright; scripts/setup.sh installs it)")
    executable = next(filter(None, map(shutil.which, BROWSERS)), None)
    if executable is None:
        pytest.skip(f"no Chromium or Chrome on PATH (looked for {', '.join(BROWSERS)}): "
                    "apt-get install chromium, or scripts/setup.sh as root")
    with sync_api.sync_playwright() as p:
        # Chromium's sandbox refuses to start as root (containers, CI)
        browser = p.chromium.launch(executable_path=executable,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield browser
        browser.close()


@pytest.mark.slow
def test_a_notebook_double_clicked_in_the_lab_runs_on_the_smoke_params(browser, lab_server, tmp_path):
    """A person's path through `tulu-repro lab`: double-click notebooks/01_data.py in the file browser
    (it opens as a notebook, not in the text editor) with the project's kernel, point its parameters
    cell at a run folder, Run All: Figure 2 and its table show, no cell fails, no news question."""
    from playwright.sync_api import expect

    run_dir = tmp_path / "run"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{lab_server}/lab?token={TOKEN}")
        page.locator(".jp-DirListing-item", has_text="01_data.py").dblclick()
        notebook = page.locator(".jp-NotebookPanel")
        expect(notebook).to_be_visible(timeout=60_000)
        assert page.locator(".jp-FileEditor").count() == 0, "01_data.py opened in the text editor"

        # the kernel the notebook starts with, as the toolbar names it, once it has started and is idle
        started = """() => {
            const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
            const state = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return name && state && !/^(No Kernel|Kernel)?$/.test(name.textContent.trim())
                && state.dataset.status === 'idle' && name.textContent.trim();
        }"""
        kernel = page.wait_for_function(started, timeout=120_000).json_value()
        problems = [] if kernel == KERNEL else [
            f"the notebook started the kernel {kernel!r}, not the project's {KERNEL!r}: its header's "
            "kernelspec name (python3) is not the kernel scripts/setup.sh installs (tulu-repro)"]

        # the parameters cell: the smoke params (its default), outputs into this test's run folder
        cells = notebook.locator(".jp-CodeCell")
        parameters = cells.first
        expect(parameters).to_contain_text('params_file = "params/smoke.yaml"')
        parameters.locator(".cm-content").click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.insert_text(f'params_file = "params/smoke.yaml"\nrun_dir = "{run_dir}"\n'
                                  'stage_dir = None')
        page.keyboard.press("Escape")
        expect(parameters).to_contain_text(f'run_dir = "{run_dir}"')
        expect(parameters).not_to_contain_text("run_dir = None")

        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
        # Run All has started (the parameters cell ran) and ended: no cell waits (an error stops the rest)
        page.wait_for_function("""() => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());  // (innerText is '' for a cell scrolled out of view)
            const state = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return /^\\[\\d+\\]:$/.test(prompts[0]) && !prompts.includes('[*]:')
                && state.dataset.status === 'idle';
        }""", timeout=RUN_ALL_TIMEOUT_S * 1000)
        prompts = [p.strip() for p in cells.locator(".jp-InputPrompt").all_text_contents()]
        if not all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            problems.append(f"Run All did not run every code cell: {prompts}")
        # an error shows as stderr (one mime type for both in JupyterLab): a traceback, or "XError: ..."
        stderr = notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        problems += [f"a cell failed: {text[-1500:]}" for text in stderr.all_text_contents()
                     if re.search(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", text, re.M)]
        figure_cell = cells.filter(has_text='stage.figure("fig02_sft_mix"')
        figure_cell.scroll_into_view_if_needed()
        figure_cell.screenshot(path=tmp_path / "01_data_figure2.png")
        outputs = figure_cell.locator(".jp-OutputArea")
        images = outputs.locator("img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
        if not images or not all(images):
            problems.append(f"no Figure 2 image in the cell's outputs (loaded widths: {images})")
        headers = outputs.locator("table.dataframe th").all_inner_texts()
        if not {"source", "count", "mean", "50%", "max"} <= set(headers):
            problems.append(f"no SFT-mix table (per source: count, mean, 50%, max) in its outputs: {headers}")
        if "Figure 2:" not in outputs.inner_text():
            problems.append("no 'Figure 2: ...' reading printed")
        if not (run_dir / ".interactive" / "01_data" / "figures" / "fig02_sft_mix.png").exists():
            problems.append(f"the notebook did not write into the run_dir it was given ({run_dir})")
        news = page.locator(".Toastify__toast", has_text="news")
        if news.count():
            problems.append(f"JupyterLab asked: {news.first.inner_text()!r}")
        assert not problems, "\n".join(problems) + f"\n(screenshot: {tmp_path / '01_data.png'})"
    finally:
        page.screenshot(path=tmp_path / "01_data.png")
        page.close()


@pytest.fixture(scope="module")
def report(smoke_run) -> Path:
    """The whole smoke run's index.html (the session's run, shared with tests/test_e2e.py): every
    part of the template — summary, stage table, paper index, items with our figures, tables and
    readings, the items not run — with the wide training-log tables that once overflowed."""
    assert smoke_run.done.returncode == 0, smoke_run.done.stdout[-3000:] + smoke_run.done.stderr[-3000:]
    return smoke_run.out / "index.html"


@pytest.mark.slow
def test_the_report_loads_whole_and_fits_a_laptop_screen(browser, report):
    """The run's index.html from disk at 1280x900: every image loads, nothing logs an error, and no
    wide table or figure makes the page scroll sideways."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate("[...document.images].map(i => [i.alt, i.complete && i.naturalWidth])")
        assert images and "fig02_sft_mix" in dict(images), "no figure on the page"
        assert all(width for _, width in images), f"not loaded: {[alt for alt, w in images if not w]}"
        assert not errors, errors
        # the page, and the report's column within it: a wide table scrolls in its own box (a smoke run's
        # training logs have 40-54 columns; 01_data's contamination table is a little wider than the column)
        page_width, column, column_content = page.evaluate(
            "[document.documentElement.scrollWidth, document.body.clientWidth, document.body.scrollWidth]")
        wide = page.evaluate("""() => [...document.querySelectorAll('body > *, section.item > *')]
            .filter(e => e.getBoundingClientRect().right > document.body.getBoundingClientRect().right)
            .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 60))""")
        assert page_width <= 1280, f"the page is {page_width} px wide in a 1280 px window; wider: {wide}"
        assert column_content <= column, f"{column_content} px of content in the {column} px column: {wide}"
    finally:
        page.close()


def test_a_notebook_without_its_upstream_stage_names_the_command_to_run_first(tmp_path, monkeypatch):
    """Opened by hand before the stages it builds on, a notebook fails with one line: the command to
    run, with the params file it is using (and its run folder when not the default one)."""
    from tulu_lib.core import progress
    from tulu_lib.workbook.stages import open_stage

    monkeypatch.chdir(REPO)  # open_stage moves to the repository and sets these: put them back after
    for name in (progress.TENSORBOARD_DIR_ENV, progress.STAGE_DIR_ENV):
        monkeypatch.setenv(name, os.environ.get(name, ""))

    stage = open_stage("03_dpo", "params/smoke.yaml", run_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError) as missing:
        stage.upstream("02_sft")
    message = str(missing.value)
    assert "\n" not in message and "..." not in message
    assert (f"run stage 02_sft first: tulu-repro run --params params/smoke.yaml "
            f"--out {shlex.quote(str(tmp_path / 'run'))} --stages 01_data 02_sft") in message
    # the default run folder (reports/<name>) needs no --out; a params file outside the repo is named whole
    own = tmp_path / "my params.yaml"
    shutil.copy(REPO / "params/smoke.yaml", own)
    stage = open_stage("02_sft", str(own), run_dir=str(REPO / "reports" / "smoke"),
                       stage_dir=str(tmp_path / "s"))
    assert stage._run_first("01_data") == f"tulu-repro run --params {shlex.quote(str(own))} --stages 01_data"
