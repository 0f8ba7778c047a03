"""Every notebook in notebooks/ is committed clean, declares its parameters, and only calls the kit.

Logic belongs in ``medsyn_utils`` where it is tested; a notebook's code cells stay short calls.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from medsyn_utils.pipeline.parameters import check_value, declared_parameters, source_parameters

from medsyn_utils.pipeline.stages import STAGES
from medsyn_utils.core.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_LINES = 12  # non-blank lines in a code cell (the parameters cell excepted)
REQUIRED = {"run_dir": '"outputs/interactive"', "data_dir": '""'}

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebook in notebooks/ yet")


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def _read(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    return nb


def _python(source: str) -> str:
    """Cell source without IPython magics and shell escapes (they are not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    nb = _read(path)
    dirty = [index + 1 for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts: clear them"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{path.name}: kernelspec must be python3 (the runner executes with it)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_title_then_parameters_cell(path):
    nb = _read(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        f"{path.name}: the first cell must be a markdown title and a paragraph of purpose"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [1], f"{path.name}: cell 2 (and only it) must be tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameters_are_simple_typed_assignments_with_help(path):
    nb = _read(path)
    source = nb.cells[1].source
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        line = lines[node.lineno - 1]
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), \
            f"{path.name}: parameters cell line {node.lineno} is not an assignment: {line!r}"
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        assert isinstance(target, ast.Name) and (
            isinstance(node, ast.AnnAssign) or len(node.targets) == 1), \
            f"{path.name}: assign one plain name per line: {line!r}"
        try:
            ast.literal_eval(node.value)
        except ValueError:
            pytest.fail(f"{path.name}: {target.id} must default to a literal value: {line!r}")
    params = declared_parameters(path)
    assert [name for name, *_ in source_parameters(source)] == list(params)
    for param in params.values():
        assert param.help, f"{path.name}: {param.name} needs a '# help' comment"
        assert param.read_by_papermill, (
            f"{path.name}: papermill cannot read the line of {param.name} (an '=' in its "
            f"comment?): rewrite the comment so `papermill --help-notebook` lists it")
        assert param.type, f"{path.name}: annotate {param.name} with its type"
    for name, default in REQUIRED.items():
        assert name in params and params[name].default_text == default, \
            f"{path.name}: declare `{name}: str = {default}  # ...` (the runner sets run_dir)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_defaults_satisfy_declared_ranges(path):
    for param in declared_parameters(path).values():
        try:
            check_value(param, param.default, f"{path.name}:{param.name}")
        except ParameterError as error:
            pytest.fail(f"default out of its own declaration: {error}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_code_cells_are_short_calls(path):
    nb = _read(path)
    for number, cell in enumerate(nb.cells[2:], start=3):
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= MAX_LINES, (
            f"{path.name}: cell {number} has {len(lines)} lines (at most {MAX_LINES}): move the "
            f"logic into medsyn_utils and call it")
        tree = ast.parse(_python(cell.source))
        defined = [node.name for node in ast.walk(tree)
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defined, (f"{path.name}: cell {number} defines {defined}: functions and "
                             f"classes belong in medsyn_utils, where they are tested")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_last_cell_writes_the_stage_record(path):
    nb = _read(path)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert "write_stage_record" in code[-1].source and re.search(
        rf"['\"]{re.escape(path.stem)}['\"]", code[-1].source), (
        f"{path.name}: the last code cell must call write_stage_record(run_dir, "
        f"\"{path.stem}\", ...)")


def test_every_notebook_is_a_stage():
    stages = {Path(stage.notebook).name for stage in STAGES}
    strays = [path.name for path in NOTEBOOKS if path.name not in stages]
    assert not strays, f"notebooks not in the runner's stage table: {strays}"
