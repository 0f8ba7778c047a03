"""The pipeline runner on small throw-away notebooks: strict parameters, failures, re-runs, manifest."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


from medsyn_utils.pipeline.execution import check_inputs, run_plan


from medsyn_utils.pipeline.kernel import ensure_python_kernel


from medsyn_utils.pipeline.parameters import (NotebookParameter, _literal, check_value,
                                              declared_parameters, parse_help)


from medsyn_utils.pipeline.planning import plan_run


from medsyn_utils.pipeline.records import set_aside_outputs


from medsyn_utils.pipeline.stages import STAGE_BY_NAME, Stage
from medsyn_utils.cli import run as cli_run
from medsyn_utils.core.data import checksums
from medsyn_utils.core.errors import MedsynError, ParameterError

ROOT = Path(__file__).resolve().parents[2]
DATA_FILE = "rumedbench/RuMedTop3/dev_v1.jsonl"  # a registered name, recorded, never read here

PARAMETERS = '''run_dir: str = "outputs/interactive"  # run folder
data_dir: str = ""  # offline data mirror (empty: MEDSYN_DATA_DIR)
seed: int = 0  # random seed [0..]
n: int = 3  # rows to write [1..50]
scale: float = 1.0  # multiplies every value [0..10]
mode: str = "plain"  # how rows are written {plain|fancy}
tags: list = ["a"]  # labels written into each row
fail: bool = False  # raise in the third cell'''


def _declared_output(stage: Stage) -> str:
    """Code writing the run-folder file the stage table says the stage makes (tasks.csv, ...)."""
    if not stage.outputs:
        return ""
    name = stage.outputs[-1]
    if name.endswith(".jsonl"):
        return (f"(out / '{name}').write_text(''.join(json.dumps({{'task_id': str(r['i']), "
                f"'seed': r['seed']}}) + chr(10) for r in rows))")
    if name.endswith(".csv"):
        return (f"(out / '{name}').write_text('task_id,seed,v' + chr(10) + ''.join("
                f"f\"{{r['i']}},{{r['seed']}},{{r['v']}}\" + chr(10) for r in rows))")
    return f"(out / '{name}').write_text(json.dumps({{'rows': n}}))"


def _write_notebook(path: Path, stage: Stage, parameters: str = PARAMETERS) -> None:
    """A stage notebook that logs its run, can fail on purpose and writes a stage record.

    Its record lists its own rows file and, like the real generation stage, its input file.
    """
    inputs = "".join(f", 'input_{name}': {{'path': '{name}.jsonl'}}" for name in stage.after)
    cells = [
        new_markdown_cell(f"# Throw-away {stage.name}\n\nWrites a few rows for runner tests."),
        new_code_cell(parameters),
        new_code_cell("from pathlib import Path\nout = Path(run_dir)\nout.mkdir(parents=True, "
                      f"exist_ok=True)\nwith open(out / 'log.txt', 'a') as log:\n"
                      f"    log.write('{stage.name}\\n')"),
        new_code_cell(f"if fail:\n    raise ValueError('boom in {stage.name}')"),
        new_code_cell(f"rows = [{{'i': i, 'v': i * scale, 'seed': seed}} for i in range(n)]\n"
                      f"import json\n(out / '{stage.name}.jsonl').write_text(''.join("
                      f"json.dumps(r) + chr(10) for r in rows))\n" + _declared_output(stage)),
        new_code_cell(f"from medsyn_utils.core.provenance import write_stage_record\n"
                      f"write_stage_record(run_dir, '{stage.record}', parameters={{'n': n}}, "
                      f"metrics={{'rows': n}}, models={{'lm': {{'id': 'tiny/{stage.name}', "
                      f"'revision': 'r1'}}}}, data_files=['{DATA_FILE}'], "
                      f"artefacts={{'rows': {{'path': '{stage.name}.jsonl'}}{inputs}}})"),
    ]
    cells[1].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def make_project(folder: Path, names=("graph", "tasks", "generation", "scoring")) -> Path:
    """A throw-away project: notebooks for some stages of the table."""
    for name in names:
        stage = STAGE_BY_NAME[name]
        _write_notebook(folder / stage.notebook, stage)
    return folder


def write_params(folder: Path, text: str, name: str = "p.yaml") -> Path:
    path = folder / "params" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


STANDARD = "stages: [graph, tasks, generation, scoring]\ncommon: {seed: 1}\ngeneration: {n: 2}\n"


def medsyn(*argv: str) -> int:
    """``medsyn run|params ...`` as cli.main runs it, without importing the other stage modules."""
    parser = argparse.ArgumentParser(prog="medsyn")
    cli_run.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    try:
        return int(args.func(args) or 0)
    except MedsynError as error:
        print(f"medsyn: error: {error}", file=sys.stderr)
        return 2


def test_cli_registers_run_and_params():
    from medsyn_utils.cli import app as cli_main  # noqa: E402
    assert "medsyn_utils.cli.run" in cli_main.COMMAND_MODULES
    parser = argparse.ArgumentParser()
    cli_run.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "--params", "p.yaml", "--set", "a=1", "--set", "b.c=2",
                              "--only", "graph,tasks", "--force"])
    assert (args.func, args.set, args.only, args.force) == (cli_run._run_command,
                                                           ["a=1", "b.c=2"], ["graph,tasks"], True)
    assert parser.parse_args(["params", "generation"]).func is cli_run._params_command


def run_args(project: Path, params: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--params", str(params), "--root", str(project), "--out", str(out),
            "--no-progress", *extra]


def log_lines(out: Path) -> list[str]:
    path = out / "log.txt"
    return path.read_text().split() if path.exists() else []


# ------------------------------------------------------------------------- reading parameters

def test_parse_help_reads_range_and_choices():
    assert parse_help("rows [1..50]") == (1.0, 50.0, None)
    assert parse_help("threshold [..0.5] of F1") == (None, 0.5, None)
    assert parse_help("mass [0.1..1e3]") == (0.1, 1000.0, None)
    assert parse_help("how {plain|fancy}") == (None, None, ("plain", "fancy"))
    assert parse_help("layers {9|12} [1..24]") == (1.0, 24.0, (9, 12))
    assert parse_help("just words, a list [a, b] and {one}") == (None, None, None)


def test_notebook_parameters_match_papermill(tmp_path):
    import papermill

    project = make_project(tmp_path, ("graph",))
    path = project / STAGE_BY_NAME["graph"].notebook
    params = declared_parameters(path)
    assert list(params) == list(papermill.inspect_notebook(str(path)))
    assert params["n"].type == "int" and params["n"].default == 3
    assert (params["n"].low, params["n"].high) == (1.0, 50.0)
    assert params["mode"].choices == ("plain", "fancy")
    assert params["tags"].default == ["a"] and params["fail"].default is False
    assert params["scale"].help.startswith("multiplies")


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    path = tmp_path / "x.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("a = 1  # one")]), str(path))
    with pytest.raises(ParameterError, match="no cell tagged 'parameters'"):
        declared_parameters(path)


def test_check_value_types_and_conversions():
    def param(line: str) -> NotebookParameter:
        cell = new_code_cell(line)
        from papermill.translators import PythonTranslator
        item = PythonTranslator.inspect(cell)[0]
        low, high, choices = parse_help(item.help)
        return NotebookParameter(item.name, item.inferred_type_name, item.default,
                                        item.help, _literal(item.default), low, high,
                                        choices)

    lr = param("lr: float = 0.001  # learning rate [0..1]")
    assert check_value(lr, "2e-5", "x.lr") == pytest.approx(2e-5)
    assert check_value(lr, 1, "x.lr") == 1.0
    with pytest.raises(ParameterError, match="must be float"):
        check_value(lr, True, "x.lr")
    count = param("k: int = 3  # how many")
    with pytest.raises(ParameterError, match="must be int, got float"):
        check_value(count, 2.5, "x.k")
    name = param('model: str = "a"  # model id or folder')
    assert check_value(name, 7, "x.model", from_cli="007") == "007"
    with pytest.raises(ParameterError, match="must be str"):
        check_value(name, 7, "x.model")
    grid = param("shares: list[float] = [0.5, 1.0]  # shares [0..1]")
    assert check_value(grid, [0, 1], "x.shares") == [0.0, 1.0]
    with pytest.raises(ParameterError, match=r"out of range \[0..1\]"):
        check_value(grid, [0.5, 2], "x.shares")
    untyped = param("device = None  # torch device, None for auto")
    assert check_value(untyped, None, "x.device") is None
    assert check_value(untyped, "cpu", "x.device") == "cpu"


# ------------------------------------------------------------------------- strict parameter files

def test_unknown_parameter_refused_before_execution(tmp_path, capsys):
    project = make_project(tmp_path / "proj")
    params = write_params(project, STANDARD + "tasks: {n: 2, batchsize: 4}\n")
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown parameter tasks.batchsize" in err
    assert "valid keys: data_dir, seed, n, scale, mode, tags, fail" in err
    assert not out.exists()  # nothing ran, not even the run folder was made


@pytest.mark.parametrize("text, message", [
    ("tasks: {n: three}\n", "tasks.n must be int, got str 'three'"),
    # a name the stage's config does not own keeps the range of the notebook's help comment
    ("tasks: {scale: 50}\n", r"tasks.scale=50.0 is out of range \[0..10\]"),
    ("tasks: {n: 0}\n", r"tasks.n=0 is not accepted: use an integer in \[1..\]"),
    ("tasks: {mode: odd}\n", r"tasks.mode='odd' is not one of \{plain\|fancy\}"),
    ("tasks: {tags: a}\n", "tasks.tags must be list"),
    ("common: {sed: 1}\n", "unknown common parameter 'sed'"),
    ("tasks: {run_dir: x}\n", "tasks.run_dir is set by the runner"),
    ("taks: {n: 2}\n", "unknown top-level key 'taks'"),
    ("stages: [graph, sorting]\n", "unknown stage 'sorting'"),
    ("stages: graph\n", "stages must be a list"),
    ("tasks: [1, 2]\n", "tasks must be a mapping"),
])
def test_bad_parameter_files_are_refused(tmp_path, text, message):
    project = make_project(tmp_path, STAGE_BY_NAME)  # every stage present
    params = write_params(project, text)
    with pytest.raises(ParameterError, match=message):
        plan_run(params, root=project, out=tmp_path / "run")


def test_wrong_type_refused_by_the_command(tmp_path, capsys):
    project = make_project(tmp_path / "proj")
    params = write_params(project, STANDARD)
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out, "--set", "generation.n=many")) == 2
    assert "generation.n must be int, got str 'many'" in capsys.readouterr().err
    assert not out.exists()


def test_overrides_and_resolution(tmp_path):
    project = make_project(tmp_path)
    params = write_params(project, STANDARD + "tasks: {mode: fancy}\n")
    plan = plan_run(params, root=project, overrides=[
        "seed=7", "generation.scale=3", "tasks.tags=[x, y]", "graph.mode=plain"],
        out=tmp_path / "run")
    assert [s.name for s in plan.selected] == ["graph", "tasks", "generation", "scoring"]
    assert plan.parameters["graph"] == {"seed": 7, "mode": "plain",
                                        "run_dir": str((tmp_path / "run").resolve())}
    assert plan.parameters["generation"]["n"] == 2
    assert plan.parameters["generation"]["scale"] == 3.0
    assert isinstance(plan.parameters["generation"]["scale"], float)
    assert plan.parameters["tasks"] == {"seed": 7, "mode": "fancy", "tags": ["x", "y"],
                                        "run_dir": str((tmp_path / "run").resolve())}
    for bad, message in [("nokey", "must look like"), ("run_dir=x", "--out"),
                         ("stages=[graph]", "--only"), ("sorting.n=1", "unknown section")]:
        with pytest.raises(ParameterError, match=message):
            plan_run(params, root=project, overrides=[bad])


def test_default_run_folder_and_stage_selection(tmp_path):
    project = make_project(tmp_path, ("graph", "tasks"))
    params = write_params(project, "common: {seed: 1}\n", name="tiny-run.yaml")
    plan = plan_run(params, root=project, only=["tasks,graph"])
    assert plan.run_dir == (project / "outputs" / "tiny-run").resolve()
    assert [s.name for s in plan.selected] == ["graph", "tasks"]
    with pytest.raises(ParameterError, match="unknown stage 'plots'"):
        plan_run(params, root=project, only=["plots"])


def test_selected_stage_without_notebook_is_an_error(tmp_path, capsys):
    project = make_project(tmp_path / "proj", ("graph", "tasks"))
    params = write_params(project, "common: {seed: 1}\n")
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out)) == 2  # default stages: generation is missing
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "stage generation: notebook" in err and "03_generation.ipynb is missing" in err
    assert "--only" in err and not out.exists()


def test_root_without_notebooks_is_an_error(tmp_path, capsys):
    params = write_params(tmp_path, "common: {seed: 1}\n")
    assert medsyn(*run_args(tmp_path / "empty", params, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds none of the stage notebooks" in err


def test_missing_input_names_the_stage_that_makes_it(tmp_path, capsys):
    """``run --only scoring`` on a fresh folder: an error before any kernel starts."""
    project = make_project(tmp_path / "proj")
    params = write_params(project, STANDARD)
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out, "--only", "scoring")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"no generations.jsonl in {out.resolve()}: run the generation stage first" in err
    assert not (out / "manifest.json").exists()
    # made by a stage that runs before it: fine
    plan = plan_run(params, root=project, out=out, only=["generation,scoring"],
                           overrides=[])
    with pytest.raises(MedsynError, match="no tasks.parquet in .*run the tasks stage first"):
        check_inputs(plan)
    check_inputs(plan_run(params, root=project, out=out))


def test_input_named_by_a_parameter_must_exist(tmp_path):
    project = make_project(tmp_path / "proj")
    for stage in ("scoring",):  # give the scoring stage an input_path parameter
        _write_notebook(project / STAGE_BY_NAME[stage].notebook,
                        STAGE_BY_NAME[stage],
                        PARAMETERS + '\ninput_path: str = ""  # table to score')
    params = write_params(project, STANDARD)
    plan = plan_run(params, root=project, out=tmp_path / "run", only=["scoring"],
                           overrides=[f"scoring.input_path={tmp_path / 'nope.csv'}"])
    with pytest.raises(MedsynError, match="scoring.input_path=.*nope.csv does not exist"):
        check_inputs(plan)
    (tmp_path / "nope.csv").write_text("a\n1\n")
    check_inputs(plan)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "params").glob("*.yaml")))
def test_committed_parameter_files_validate(name):
    """Every params/*.yaml (default, smoke, gpu, paper) passes the checks that exist so far."""
    plan = plan_run(ROOT / "params" / name, root=ROOT, out=ROOT / "outputs" / "unused")
    assert plan.selected
    for stage, values in plan.parameters.items():
        assert values["run_dir"] == str((ROOT / "outputs" / "unused").resolve()), stage


def test_params_command_shows_types_defaults_help(tmp_path, capsys):
    project = make_project(tmp_path, ("generation",))
    assert medsyn("params", "generation", "--root", str(project)) == 0
    out = capsys.readouterr().out
    assert "03_generation.ipynb" in out and "stage generation" in out
    assert re.search(r"^n\s+int\s+3\s+rows to write \[1..50\]$", out, re.M)
    assert re.search(r"^mode\s+str\s+\"plain\"\s+how rows are written", out, re.M)
    assert medsyn("params", str(project / "notebooks" / "03_generation.ipynb"), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scale"] == {"type": "float", "default": "1.0", "help": "multiplies every value "
                             "[0..10]", "low": 0.0, "high": 10.0, "choices": None}
    assert medsyn("params", "scoring", "--root", str(project)) == 2
    assert "does not exist" in capsys.readouterr().err


def test_kernel_is_pointed_at_this_interpreter(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    other = tmp_path / "elsewhere" / "kernels" / "python3"
    other.mkdir(parents=True)
    (other / "kernel.json").write_text(json.dumps({
        "argv": ["/opt/other/bin/python3", "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"], "display_name": "other", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == "/opt/other/bin/python3"
    info = ensure_python_kernel()
    assert info["set_up"].startswith("JUPYTER_PATH=")
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    assert ensure_python_kernel()["set_up"] == "no"  # second call: already ours


# ------------------------------------------------------------------------- executing notebooks

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete run of four throw-away stages (shared by the manifest tests)."""
    base = tmp_path_factory.mktemp("finished")
    project = make_project(base / "proj")
    params = write_params(project, STANDARD)
    out = base / "run"
    status = medsyn(*run_args(project, params, out))
    return status, project, out, json.loads((out / "manifest.json").read_text())


@pytest.mark.notebooks
def test_complete_run_writes_executed_notebooks(finished_run, capsys):
    status, project, out, manifest = finished_run
    assert status == 0
    assert log_lines(out) == ["graph", "tasks", "generation", "scoring"]
    for stage in ("graph", "tasks", "generation", "scoring"):
        executed = out / "notebooks" / Path(STAGE_BY_NAME[stage].notebook).name
        nb = nbformat.read(str(executed), as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert f'run_dir = "{out.resolve()}"' in injected[0].source
        assert 'seed = 1' in injected[0].source
    assert (out / "generation.jsonl").read_text().count("\n") == 2  # generation.n = 2


@pytest.mark.notebooks
def test_manifest_content(finished_run):
    status, project, out, manifest = finished_run
    assert manifest["status"] == "ok" and manifest["exit_status"] == 0
    assert manifest["run_dir"] == str(out.resolve())
    assert manifest["params_file"].endswith("p.yaml") and len(manifest["params_sha256"]) == 64
    assert manifest["parameters"]["generation"] == {"seed": 1, "n": 2,
                                                    "run_dir": str(out.resolve())}
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert manifest["packages"]["papermill"] and manifest["packages"]["python"]
    assert manifest["kernel"]["python"] == sys.executable
    assert manifest["data"][DATA_FILE]["sha256"] == checksums([DATA_FILE])[DATA_FILE]
    assert manifest["data"][DATA_FILE]["stages"] == ["graph", "tasks", "generation", "scoring"]
    assert manifest["models"]["scoring"] == {"lm": {"id": "tiny/scoring", "revision": "r1"}}
    assert manifest["artefacts"]["tasks"]["rows"]["rows"] == 3  # counted from tasks.jsonl
    assert manifest["artefacts"]["generation"]["rows"]["rows"] == 2
    for name in ("graph", "tasks", "generation", "scoring"):
        stage = manifest["stages"][name]
        assert stage["status"] == "ok" and stage["status_now"] == "ran"
        assert stage["started_at"] <= stage["ended_at"] and stage["duration_s"] > 0
        assert len(stage["fingerprint"]) == 64 and len(stage["notebook_sha256"]) == 64
        assert stage["metrics"] == {"rows": manifest["parameters"][name].get("n", 3)}
    assert manifest["stages"]["tasks"]["inputs"] == {
        "graph": manifest["stages"]["graph"]["output_fingerprint"]}


@pytest.mark.notebooks
def test_failing_cell_names_notebook_cell_and_error(tmp_path, capsys):
    project = make_project(tmp_path / "proj")
    params = write_params(project, STANDARD)
    out = tmp_path / "run"
    status = medsyn(*run_args(project, params, out, "--set", "tasks.fail=true"))
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("medsyn: error:")]
    assert len(errors) == 1
    message = errors[0]
    assert "notebooks/02_prompt_construction.ipynb failed in cell 4" in message
    assert "(`if fail:`)" in message and "ValueError: boom in tasks" in message
    executed = out / "notebooks" / "02_prompt_construction.ipynb"
    assert str(executed) in message
    nb = nbformat.read(str(executed), as_version=4)  # the partly executed notebook is kept
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ValueError" for o in outputs)
    assert log_lines(out) == ["graph", "tasks"]  # generation and scoring never started
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["exit_status"] == 1
    assert manifest["error"] == message.removeprefix("medsyn: error: ")
    assert manifest["stages"]["tasks"]["status"] == "failed"
    assert manifest["stages"]["tasks"]["error"]["cell"] == 4
    assert "generation" not in manifest["stages"]
    # fixing the parameter resumes: graph is unchanged and skipped, tasks runs again
    assert medsyn(*run_args(project, params, out)) == 0
    assert log_lines(out) == ["graph", "tasks", "tasks", "generation", "scoring"]


@pytest.mark.notebooks
def test_reruns_skip_unchanged_force_reruns_changes_rerun_downstream(tmp_path, capsys):
    project = make_project(tmp_path / "proj")
    params = write_params(project, STANDARD)
    out = tmp_path / "run"
    everything = ["graph", "tasks", "generation", "scoring"]
    assert medsyn(*run_args(project, params, out)) == 0
    assert log_lines(out) == everything
    capsys.readouterr()

    assert medsyn(*run_args(project, params, out)) == 0  # unchanged: all skipped
    assert log_lines(out) == everything
    printed = capsys.readouterr().out
    assert printed.count("unchanged, skipped") == 4
    assert f"run folder: {out.resolve()}" in printed.splitlines()[-1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s["status_now"] for s in manifest["stages"].values()} == {"skipped"}
    assert manifest["stages"]["graph"]["status"] == "skipped"

    assert medsyn(*run_args(project, params, out, "--force")) == 0
    assert log_lines(out) == everything * 2

    assert medsyn(*run_args(project, params, out, "--set", "generation.n=4")) == 0
    assert log_lines(out) == everything * 2 + ["generation", "scoring"]
    assert (out / "generation.jsonl").read_text().count("\n") == 4

    # forcing one upstream stage alone makes the next full run redo what depends on it
    assert medsyn(*run_args(project, params, out, "--set", "generation.n=4", "--only", "tasks",
                            "--force")) == 0
    before = len(log_lines(out))
    assert medsyn(*run_args(project, params, out, "--set", "generation.n=4")) == 0
    assert log_lines(out)[before - 1:] == ["tasks", "generation", "scoring"]

    # an edited notebook re-runs itself and everything after it
    notebook = project / STAGE_BY_NAME["generation"].notebook
    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells[0].source += "\n\nEdited."
    nbformat.write(nb, str(notebook))
    before = len(log_lines(out))
    assert medsyn(*run_args(project, params, out, "--set", "generation.n=4")) == 0
    assert log_lines(out)[before:] == ["generation", "scoring"]


@pytest.mark.notebooks
def test_deleted_stage_record_reruns_that_stage(tmp_path):
    project = make_project(tmp_path / "proj", ("graph", "tasks"))
    params = write_params(project, "stages: [graph, tasks]\n")
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out)) == 0
    (out / "02_prompt_construction.json").unlink()
    assert medsyn(*run_args(project, params, out)) == 0
    assert log_lines(out) == ["graph", "tasks", "tasks"]


@pytest.mark.notebooks
def test_notebook_removed_after_the_check_fails_the_run(tmp_path, capsys):
    project = make_project(tmp_path / "proj", ("graph", "tasks"))
    params = write_params(project, "stages: [graph, tasks]\n")
    plan = plan_run(params, root=project, out=tmp_path / "run")
    (project / STAGE_BY_NAME["tasks"].notebook).unlink()  # removed while the run starts
    status, manifest = run_plan(plan, progress=False)
    assert status == 1 and manifest["stages"]["tasks"]["status"] == "failed"
    assert "notebook" in manifest["error"] and "is missing" in manifest["error"]
    assert log_lines(tmp_path / "run") == ["graph"]


@pytest.mark.notebooks
def test_force_sets_aside_the_stage_own_outputs(tmp_path, capsys):
    project = make_project(tmp_path / "proj", ("graph", "tasks"))
    params = write_params(project, "stages: [graph, tasks]\n")
    out = tmp_path / "run"
    assert medsyn(*run_args(project, params, out)) == 0
    first = (out / "tasks.jsonl").read_text()
    assert medsyn(*run_args(project, params, out)) == 0  # skipped: nothing moves
    assert not (out / "superseded").exists()
    assert medsyn(*run_args(project, params, out, "--only", "tasks", "--force")) == 0
    moved = sorted((out / "superseded").glob("*/*"))
    assert [p.name for p in moved] == ["tasks.csv", "tasks.jsonl"]  # graph.jsonl, its input, stays
    assert moved[1].read_text() == first and (out / "graph.jsonl").is_file()
    assert (out / "tasks.jsonl").is_file()  # written again by the forced run
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["stages"]["tasks"]["superseded"]) == [
        str(p.relative_to(out)) for p in moved]


def test_changed_upstream_sets_aside_downstream_outputs(tmp_path, capsys):
    """New tasks under the same ids must never meet notes of the old tasks."""
    project = make_project(tmp_path / "proj", ("graph", "tasks"))
    out = tmp_path / "run"
    params = write_params(project, "stages: [graph, tasks]\ncommon: {seed: 1}\n")
    assert medsyn(*run_args(project, params, out)) == 0
    first = (out / "tasks.jsonl").read_text()
    params = write_params(project, "stages: [graph, tasks]\ncommon: {seed: 2}\n")
    assert medsyn(*run_args(project, params, out)) == 0
    moved = sorted(p.name for p in (out / "superseded").glob("*/*"))
    assert "tasks.jsonl" in moved
    old = next((out / "superseded").glob("*/tasks.jsonl"))
    assert old.read_text() == first


# ------------------------------------------------------------------------- notes follow their tasks

def test_own_outputs_come_from_the_stage_table_without_a_record(tmp_path):
    """An interrupted stage leaves no record: its outputs are still known, its inputs are not its."""
    from medsyn_utils.pipeline.records import own_outputs

    for name in ("tasks.parquet", "generations.jsonl", "scored.csv"):
        (tmp_path / name).write_text("x")
    generation = STAGE_BY_NAME["generation"]
    assert own_outputs(tmp_path, generation) == [(tmp_path / "generations.jsonl").resolve()]
    (tmp_path / "03_generation.json").write_text(json.dumps({"artefacts": {
        "store": {"path": "generations.jsonl"}, "tasks": {"path": "tasks.parquet"},
        "preview": {"path": "preview.md"}}}))
    assert [p.name for p in own_outputs(tmp_path, generation)] == ["generations.jsonl",
                                                                   "preview.md"]
    moved = set_aside_outputs(tmp_path, generation, "stamp")
    assert moved == ["superseded/stamp/generations.jsonl"]  # preview.md does not exist
    assert (tmp_path / "tasks.parquet").is_file()


def test_store_with_notes_of_other_tasks_is_detected(tmp_path):
    import pandas as pd

    from medsyn_utils.core.artefacts import task_fingerprint, write_table
    from medsyn_utils.pipeline.execution import store_mismatch

    tasks = pd.DataFrame({"task_id": ["t1", "t2"], "icd10": ["J06", "K29"],
                          "user_prompt": ["a", "b"]})
    write_table(tasks, tmp_path / "tasks.parquet")
    generation = STAGE_BY_NAME["generation"]
    rows = tasks.to_dict("records")
    store = tmp_path / "generations.jsonl"
    store.write_text("".join(json.dumps({"task_id": r["task_id"],
                                         "task_fingerprint": task_fingerprint(r)}) + "\n"
                             for r in rows))
    assert not store_mismatch(tmp_path, generation)
    rows[1]["icd10"] = "I10"  # the same id now means another task
    write_table(pd.DataFrame(rows), tmp_path / "tasks.parquet")
    assert store_mismatch(tmp_path, generation)
    assert not store_mismatch(tmp_path, STAGE_BY_NAME["scoring"])


@pytest.mark.notebooks
def test_new_task_table_after_an_interrupted_run_sets_the_store_aside(tmp_path, capsys):
    """No stage record, no manifest: the task table's content decides, and the old table goes
    aside together with its notes."""
    project = make_project(tmp_path / "proj", ("graph", "tasks", "generation"))
    out = tmp_path / "run"
    params = write_params(project, "stages: [graph, tasks, generation]\ncommon: {seed: 1}\n")
    assert medsyn(*run_args(project, params, out)) == 0
    old_tasks, old_notes = (out / "tasks.csv").read_text(), (out / "generations.jsonl").read_text()
    (out / "03_generation.json").unlink()  # as if generation was killed before its record
    (out / "manifest.json").unlink()
    params = write_params(project, "stages: [graph, tasks, generation]\ncommon: {seed: 2}\n")
    assert medsyn(*run_args(project, params, out, "--only", "tasks")) == 0
    folders = list((out / "superseded").iterdir())
    assert len(folders) == 1  # the old table and its notes, side by side
    assert (folders[0] / "tasks.csv").read_text() == old_tasks
    assert (folders[0] / "generations.jsonl").read_text() == old_notes
    assert not (out / "generations.jsonl").exists()
    assert "seed" in (out / "tasks.csv").read_text() and (out / "tasks.csv").read_text() != old_tasks


@pytest.mark.notebooks
def test_demo_stage_skips_the_input_check_and_is_recorded(tmp_path):
    project = make_project(tmp_path / "proj", ("graph",))
    scoring = STAGE_BY_NAME["scoring"]
    _write_notebook(project / scoring.notebook, scoring,
                    PARAMETERS + "\ndemo: bool = False  # made-up stand-in data, labelled as such")
    params = write_params(project, "stages: [scoring]\n")
    out = tmp_path / "run"
    with pytest.raises(MedsynError, match="no generations.jsonl"):
        run_plan(plan_run(params, root=project, out=out), progress=False)
    plan = plan_run(params, root=project, out=out, overrides=["scoring.demo=true"])
    status, manifest = run_plan(plan, progress=False)
    assert status == 0
    assert manifest["demo"] is True and manifest["stages"]["scoring"]["demo"] is True
    assert json.loads((out / "manifest.json").read_text())["demo"] is True
