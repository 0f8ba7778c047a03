"""Every notebook opened and run in JupyterLab in a real (headless) Chromium, widgets included.

For each notebook: a copy with small parameters injected the way ``medsyn run`` injects them
(papermill's ``injected-parameters`` cell) and its own prepared run folder; open it in JupyterLab,
Run All from the menu, wait (bounded) until every cell ran and the kernel is idle, save, assert no
error output and no traceback in any cell, and keep screenshots under the test's temporary
folder. The widgets are driven like a user would: 01 picks another code in the explorer, 02
re-samples with the picker, 04 moves the threshold sliders.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

pytestmark = pytest.mark.browser

# Seconds a notebook may take to run in the page (2 shared CPU cores are the yardstick).
RUN_LIMIT_S = {"01": 180, "02": 180, "03": 240, "04": 300, "05": 240, "06": 300, "07": 420,
               "08": 300}
WIDGET_LIMIT_MS = 60_000  # a widget callback round trip (kernel work included)
ERROR_MARKERS = ("Traceback (most recent call last)", "Error displaying widget",
                 "Failed to load model class")
PROMPT_HEADER = re.compile(r"^t\d+ · \S+ · (\S+) .*? · symptoms: (.*?) · example:", re.M)


# ------------------------------------------------------------------------ the prepared run folder


def _medsyn(*args: str) -> None:
    """Run one ``medsyn`` command in this process (the kit's own way of making the artefacts)."""
    from medsyn_utils.cli import main

    assert main(list(args)) == 0, f"medsyn {' '.join(args)} failed (its message is above)"


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory, data_dir, tiny_lm_dir, tiny_encoder_dir) -> Path:
    """tasks (02), generations (03) and their scored table (04) for 8 tasks, made by the kit's CLI
    with the tiny models; and ``published/scored.parquet``, a published-layout table of 150 real
    train notes with several models and priors (the tiny model's notes are token soup, too poor
    for the downstream classifier of 06)."""
    from medsyn_utils.core.artefacts import write_table
    from medsyn_utils.score.demo import schema_shaped_dataset

    run = tmp_path_factory.mktemp("prepared") / "run"
    _medsyn("tasks", "--n", "8", "--seed", "0", "--out", str(run))
    _medsyn("generate", "--tasks", str(run / "tasks.parquet"), "--out", str(run / "generations.jsonl"),
            "--model", str(tiny_lm_dir), "--batch-size", "4", "--max-new-tokens", "16",
            "--temperature", "0", "--no-progress")
    _medsyn("score", "--in", str(run / "generations.jsonl"), "--out", str(run / "scored.parquet"),
            "--encoder", str(tiny_encoder_dir), "--layer", "2", "--quiet")
    (run / "published").mkdir()
    write_table(schema_shaped_dataset(150, seed=5, extra_columns=True), run / "published" / "scored.parquet")
    return run


# Each notebook's run folder starts with what it reads (name there: prepared file), not what it makes.
TASKS = {"tasks.parquet": "tasks.parquet", "tasks.csv": "tasks.csv"}
RUN_INPUTS = {"01": {}, "02": {}, "03": TASKS,
              "04": {**TASKS, "generations.jsonl": "generations.jsonl"},
              "05": {"scored.parquet": "published/scored.parquet"},
              "06": {"scored.parquet": "published/scored.parquet"},
              "07": {**TASKS, "generations.jsonl": "generations.jsonl", "scored.parquet": "scored.parquet"},
              "08": {"scored.parquet": "published/scored.parquet"}}


def _parameters(number: str, lm: Path, encoder: Path) -> dict:
    """Small parameters per notebook (run_dir is added by the caller)."""
    return {
        "01": {"focus_code": "J06", "top_k": 5},
        "02": {"n": 12, "seed": 0, "k_max": 3, "show_per_kind": 1},
        "03": {"model": str(lm), "batch_size": 4, "max_new_tokens": 8, "temperature": 0.0,
               "show_notes": 1},
        "04": {"encoder": str(encoder), "layer": 2, "calibration_size": 6, "paper_encoder": "",
               "assumed_percentile": 20.0, "show_notes": 1, "batch_size": 16},
        "05": {"seed": 1},
        "06": {"seeds": 1, "char_ngrams": False, "max_features": 3000, "bootstrap": 100,
               "classifier": "tfidf-svm",
               "panel": ["tfidf-svm"]},
        "07": {"base_model": str(lm), "encoder": str(encoder), "encoder_layer": 2, "max_steps": 3,
               "max_records": 12, "eval_tasks": 2, "eval_max_new_tokens": 8, "learning_rate": 0.01},
        "08": {"bootstrap": 20, "corpus": False, "show_notes": 5},
    }[number]


def _notebook(number: str) -> Path:
    found = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    assert len(found) == 1, f"expected one notebook {number}_*.ipynb in {NOTEBOOKS}, found {found}"
    return found[0]


def _place(number: str, lab_root: Path, prepared: Path, parameters: dict) -> tuple[str, Path]:
    """Copy notebook ``number`` into the served folder with its parameters injected, and give it
    its own run folder; returns (name in the lab, run folder)."""
    from papermill.parameterize import parameterize_notebook

    source = _notebook(number)
    run = lab_root / "runs" / number
    run.mkdir(parents=True)
    for name, source_name in RUN_INPUTS[number].items():
        shutil.copy2(prepared / source_name, run / name)
    nb = nbformat.read(str(source), as_version=4)
    nb.metadata.setdefault("papermill", {})  # what papermill's own execute sets up first
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    nb = parameterize_notebook(nb, {"run_dir": str(run), **parameters})
    (lab_root / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, str(lab_root / "notebooks" / source.name))
    return f"notebooks/{source.name}", run


# ------------------------------------------------------------------------------ driving the lab


def _api(url: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{url}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def _session(url: str, name: str) -> dict | None:
    return next((s for s in _api(url, "/api/sessions") if s["path"] == name), None)


def _kernel_idle(url: str, name: str) -> bool:
    session = _session(url, name)
    return session is not None and session["kernel"]["execution_state"] == "idle"


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
        "nodes => nodes.map(n => n.textContent.trim())")


def _menu(page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


def _wait(condition, limit_s: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_s:.0f} s waiting for {what}")
        time.sleep(interval)


def _run_all(page, url: str, name: str, limit_s: float) -> None:
    """Open ``name``, Run All from the menu, wait until every cell ran and the kernel is idle."""
    page.goto(f"{url}/lab/tree/{name}?reset")  # reset: no tabs restored from an earlier test
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").first.wait_for()
    _wait(lambda: _kernel_idle(url, name), 120, f"the kernel of {name} to start")
    _menu(page, "Run", "runmenu:run-all")
    _wait(lambda: any(p != "[ ]:" for p in _prompts(page)), 30, "Run All to start")
    # Lab stops Run All at a failing cell: then no prompt is left queued ([*]) either.
    _wait(lambda: "[*]:" not in _prompts(page) and _kernel_idle(url, name), limit_s,
          f"{name} to finish running")
    page.wait_for_timeout(500)  # let the last outputs render


def _save(page, notebook: Path) -> nbformat.NotebookNode:
    """Save from the menu and read the notebook back once it is written whole (the server may
    truncate the file before writing it, so a changed mtime alone can mean an empty file)."""
    before = notebook.stat().st_mtime_ns
    _menu(page, "File", "docmanager:save")
    saved: list[nbformat.NotebookNode] = []

    def written() -> bool:
        if notebook.stat().st_mtime_ns == before:
            return False
        try:
            saved[:] = [nbformat.read(str(notebook), as_version=4)]
        except (nbformat.reader.NotJSONError, json.JSONDecodeError):
            return False  # caught mid-write: read again
        return True

    _wait(written, 30, f"{notebook.name} to be saved")
    return saved[0]


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    """Every error output, traceback and cell left unexecuted, one line each."""
    problems = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None and cell.source.strip():
            problems.append(f"cell {number} did not run")
        for output in cell.get("outputs", []):
            text = json.dumps(output, ensure_ascii=False)
            if output.get("output_type") == "error":
                problems.append(f"cell {number}: {output.get('ename')}: {output.get('evalue')}")
            elif any(marker in text for marker in ERROR_MARKERS):
                problems.append(f"cell {number}: {text[:300]}")
    return problems


def _page_errors(page) -> list[str]:
    text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").inner_text()
    return [marker for marker in ERROR_MARKERS if marker in text]


@pytest.fixture
def lab_page(browser_context):
    page = browser_context.new_page()
    yield page
    page.close()


@pytest.fixture
def run_in_lab(lab_page, jupyter_lab, lab_root, prepared_run, tiny_lm_dir, tiny_encoder_dir, tmp_path):
    """Run one notebook in the lab: returns (page, run folder, saved notebook); screenshots land
    in the test's temporary folder; the kernel is shut down afterwards."""
    started = []

    def run(number: str):
        name, run_dir = _place(number, lab_root, prepared_run,
                               _parameters(number, tiny_lm_dir, tiny_encoder_dir))
        started.append(name)
        try:
            _run_all(lab_page, jupyter_lab, name, RUN_LIMIT_S[number])
        finally:  # the state of the page, also when it failed or timed out
            lab_page.screenshot(path=str(tmp_path / f"{number}-executed.png"))
        saved = _save(lab_page, lab_root / name)
        assert not _errors(saved), f"{name} in JupyterLab: " + "; ".join(_errors(saved))
        assert not _page_errors(lab_page), f"{name}: the page shows {_page_errors(lab_page)}"
        lab_page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").screenshot(
            path=str(tmp_path / f"{number}-notebook.png"))
        return lab_page, run_dir, saved

    yield run
    for name in started:
        session = _session(jupyter_lab, name)
        if session is not None:
            _api(jupyter_lab, f"/api/sessions/{session['id']}", method="DELETE")


def _widget_cell(page, selector: str):
    """The (last) code cell whose output holds ``selector``, scrolled into view."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").filter(
        has=page.locator(selector)).last
    cell.scroll_into_view_if_needed()
    return cell


# ---------------------------------------------------------------------------------- the tests


# Key numbers each notebook must record when run from the lab (on its prepared run folder).
EXPECTED_METRICS = {"03": {"notes": 8, "generated_this_run": 8, "pending_left": 0},
                    "05": {"rows": 150, "demo": False},
                    "06": {"synthetic_input_rows": 150, "demo": False},
                    "07": {"steps": 3}}


@pytest.mark.parametrize("number", sorted(EXPECTED_METRICS))
def test_notebook_runs_in_jupyterlab(run_in_lab, number):
    _, run, _ = run_in_lab(number)
    record = json.loads((run / f"{_notebook(number).stem}.json").read_text(encoding="utf-8"))
    assert record["parameters"]["run_dir"] == str(run)
    metrics = {name: record["metrics"].get(name) for name in EXPECTED_METRICS[number]}
    assert metrics == EXPECTED_METRICS[number]


def test_notebook_01_explorer_follows_the_picked_code(run_in_lab, tmp_path):
    from medsyn_utils.kg.graph import load_graph

    page, run, _ = run_in_lab("01")
    assert json.loads((run / "01_graph_exploration.json").read_text())["metrics"]["focus_code"] == "J06"
    kg = load_graph()
    top_k = _parameters("01", Path(), Path())["top_k"]
    first, picked = kg.rumedtop3_categories[0], "I11"
    cell = _widget_cell(page, ".widget-dropdown select")
    output = cell.locator(".widget-output")

    def shows(code: str) -> bool:
        text = _norm(output.inner_text())
        symptoms = kg.symptoms(code, rollup=True).head(top_k)["symptom"]
        sharing = kg.shared_symptoms(code, top=10)["category"]
        return all(_norm(s)[:40] in text for s in symptoms) and all(c in text for c in sharing)

    assert shows(first), f"the explorer does not start with {first}'s symptoms and neighbours"
    ego_before = output.locator("img").first.get_attribute("src")
    assert ego_before, "the explorer shows no ego graph"
    cell.locator(".widget-dropdown select").select_option(label=f"{picked} {kg.name(picked)[:50]}")
    _wait(lambda: shows(picked), WIDGET_LIMIT_MS / 1000, f"the explorer to show {picked}")
    only_first = set(kg.symptoms(first, rollup=True).head(top_k)["symptom"]) - set(
        kg.symptoms(picked, rollup=True)["symptom"])
    assert only_first and not any(_norm(s)[:40] in _norm(output.inner_text()) for s in only_first), \
        f"{first}'s symptoms are still shown after picking {picked}"
    _wait(lambda: output.locator("img").count() == 1
          and output.locator("img").first.get_attribute("src") != ego_before,
          WIDGET_LIMIT_MS / 1000, f"the ego graph to show {picked}")
    cell.screenshot(path=str(tmp_path / "01-explorer.png"))


def _norm(text: str) -> str:
    """Whitespace as the page shows it (runs collapsed)."""
    return " ".join(str(text).split())


def _drawn(text: str) -> list[tuple[str, str]]:
    return PROMPT_HEADER.findall(text)


def test_notebook_02_picker_draws_new_symptoms_for_the_chosen_code(run_in_lab, tmp_path):
    page, run, _ = run_in_lab("02")
    assert json.loads((run / "02_prompt_construction.json").read_text())["metrics"]["n_tasks"] == 12
    cell = _widget_cell(page, ".widget-button")
    output, button = cell.locator(".widget-output"), cell.locator("button", has_text="re-sample")
    select, seed = cell.locator(".widget-dropdown select"), cell.locator(".widget-text input")
    codes = [o.strip() for o in select.locator("option").all_inner_texts()]
    assert len(codes) >= 2, f"the picker offers {codes}"

    def draw() -> list[tuple[str, str]]:
        before = output.inner_text()
        button.click()
        _wait(lambda: output.inner_text() != before and _drawn(output.inner_text()),
              WIDGET_LIMIT_MS / 1000, "the picker to draw tasks")
        assert "error:" not in output.inner_text()
        return _drawn(output.inner_text())

    chosen = codes[1]
    select.select_option(label=chosen)
    first = draw()
    assert len(first) == 3 and all(code.startswith(chosen) for code, _ in first), first
    seed.fill("7")
    seed.press("Enter")
    again = draw()
    assert all(code.startswith(chosen) for code, _ in again), again
    assert [s for _, s in again] != [s for _, s in first], "a new seed drew the same symptoms"
    cell.screenshot(path=str(tmp_path / "02-picker.png"))


def test_notebook_04_threshold_sliders_change_the_share_passing(run_in_lab, tmp_path):
    from medsyn_utils.score import explorer

    page, run, _ = run_in_lab("04")
    scored = pd.read_parquet(run / "scored.parquet")
    cell = _widget_cell(page, ".medsyn-threshold-explorer")
    share = cell.locator(".medsyn-share")

    def passing_shown() -> int:
        rows = share.locator("tbody tr").all_inner_texts()
        return int(rows[-1].split("\t")[-2])  # the "all" row: notes, passing, share

    used = json.loads((run / "04_bertscore_evaluation.json").read_text())["metrics"]["thresholds_used"]
    expected = explorer.share_passing(scored, used["symptoms_recall"], used["anamnesis_precision"])
    assert passing_shown() == expected["passing"].iloc[-1]
    for key, value in (("End", 1.0), ("Home", 0.0)):
        for score in explorer.SCORES:
            cell.locator(f".medsyn-slider-{score} .noUi-handle").press(key)
            _wait(lambda: f"{score} {explorer.RULES[score]} {value:.3f}" in cell.inner_text(),
                  WIDGET_LIMIT_MS / 1000, f"{score} to move to {value}")
        want = int(explorer.share_passing(scored, value, value)["passing"].iloc[-1])
        _wait(lambda: passing_shown() == want, WIDGET_LIMIT_MS / 1000,
              f"{want} notes passing at thresholds {value} (shown: {passing_shown()})")
        cell.screenshot(path=str(tmp_path / f"04-explorer-{value}.png"))
    assert int(explorer.share_passing(scored, 1.0, 1.0)["passing"].iloc[-1]) != \
        int(explorer.share_passing(scored, 0.0, 0.0)["passing"].iloc[-1]), \
        "the prepared scores cannot tell the two slider positions apart"


def test_notebook_08_browser_filters_and_highlights_notes(run_in_lab, tmp_path):
    page, run, _ = run_in_lab("08")
    notes = pd.read_parquet(run / "evaluation.parquet")
    assert json.loads((run / "08_evaluation.json").read_text())["metrics"]["notes"] == len(notes)
    cell = _widget_cell(page, ".evaluation-browser")
    shown = cell.locator(".evaluation-browser")

    def count() -> int:
        return int(shown.locator(".count").inner_text().split()[0])

    assert count() == len(notes)
    marks = shown.locator("mark")
    assert marks.count() > 0, "no symptom is highlighted in the first notes"
    assert set(marks.evaluate_all("els => els.map(e => e.className)")) <= \
        {"affirmed", "negated", "unrequested"}
    model = sorted(notes["generation_model"].astype(str).unique())[0]
    cell.locator(".widget-dropdown select").first.select_option(label=model)
    want = int((notes["generation_model"].astype(str) == model).sum())
    _wait(lambda: count() == want, WIDGET_LIMIT_MS / 1000, f"{want} notes of {model}")
    cards = shown.locator(".note-card").all_inner_texts()
    assert cards and all(f" {model} " in _norm(card) for card in cards), cards[:2]
    code = cell.locator(".widget-text input")
    code.fill("ZZZ")
    code.press("Enter")
    _wait(lambda: count() == 0, WIDGET_LIMIT_MS / 1000, "no note of code ZZZ")
    cell.screenshot(path=str(tmp_path / "08-browser.png"))
