"""Executing a checked plan: inputs checked first, one notebook per stage, the manifest kept current.

A stage whose input is missing stops the run with the stage that makes it; a stage whose inputs
changed since it last ran (compared by file hash, not by what a record says) starts fresh, its
earlier outputs and those of the stages after it set aside together.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from medsyn_utils.core import artefacts
from medsyn_utils.core.artefacts import MissingInputError, require_input, task_fingerprints
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.paths import resolve
from medsyn_utils.core.provenance import git_state, now_iso, package_versions, write_json_atomic
from medsyn_utils.pipeline.failures import StageFailure, describe_failure
from medsyn_utils.pipeline.fingerprints import file_sha256, output_fingerprint, stage_fingerprint
from medsyn_utils.pipeline.kernel import (engine_options, ensure_python_kernel,
                                          logged_kernel_manager)
from medsyn_utils.pipeline.planning import RunPlan
from medsyn_utils.pipeline.records import collect, file_hashes, load_manifest, own_outputs, set_aside
from medsyn_utils.pipeline.stages import (DEMO_PARAMETER, KERNEL_NAME, MANIFEST, STAGE_BY_NAME,
                                          STAGES, Input, Stage, later_stages)


# --------------------------------------------------------------------------- inputs

def wants_demo(plan: RunPlan, stage: Stage) -> bool:
    """The user asked this stage for made-up stand-in data (``demo: true``)."""
    return plan.parameters.get(stage.name, {}).get(DEMO_PARAMETER) is True


def input_path(plan: RunPlan, stage: Stage, wanted: Input, *, made_before: set[str]) -> Path | None:
    """The file a stage will read for one input; ``None`` when a stage running before makes it.

    Raises :class:`MissingInputError` naming the stage that makes a missing file.
    """
    given = plan.parameters.get(stage.name, {}).get(wanted.parameter or "", "")
    if given:
        path = Path(str(given))
        path = path if path.is_absolute() else resolve(path)
        if not path.is_file():
            raise MissingInputError(f"{stage.name}.{wanted.parameter}={given}: {path} does not "
                                    f"exist: check the path or leave it empty to read the run "
                                    f"folder's {wanted.names[0]}")
        return path
    present = [plan.run_dir / name for name in wanted.names if (plan.run_dir / name).is_file()]
    if present:
        return present[0]
    if any(name in made_before for name in wanted.names):
        return None
    return require_input(plan.run_dir, *wanted.names)


def check_inputs(plan: RunPlan) -> None:
    """Before anything runs: every selected stage's inputs exist or an earlier stage makes them."""
    made: set[str] = set()
    for stage in plan.selected:
        if not wants_demo(plan, stage):
            for wanted in stage.inputs:
                input_path(plan, stage, wanted, made_before=made)
        made.update(stage.outputs)


def stage_inputs(plan: RunPlan, stage: Stage) -> list[Path]:
    """The input files of a stage about to execute (all present: checked again now)."""
    if wants_demo(plan, stage):
        return []
    found = [input_path(plan, stage, wanted, made_before=set()) for wanted in stage.inputs]
    return [path for path in found if path is not None]


def store_mismatch(run_dir: Path, stage: Stage) -> bool:
    """Notes in the stage's store carry task fingerprints that the current task table lacks."""
    store = run_dir / "generations.jsonl"
    if "generations.jsonl" not in stage.outputs or not store.is_file():
        return False
    tasks_file = next((run_dir / n for n in ("tasks.parquet", "tasks.csv")
                       if (run_dir / n).is_file()), None)
    if tasks_file is None:
        return False
    from medsyn_utils.core.artefacts import read_table

    try:
        expected = task_fingerprints(read_table(tasks_file, what="task table"))
    except InputTableError:
        return False  # the stage reports an unreadable table itself
    with open(store, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or "task_fingerprint" not in record:
                continue
            if expected.get(str(record.get("task_id"))) not in (None, record["task_fingerprint"]):
                return True
    return False


# --------------------------------------------------------------------------- one stage

def _execute(stage: Stage, plan: RunPlan, executed: Path, progress: bool) -> None:
    import papermill

    executed.parent.mkdir(parents=True, exist_ok=True)
    notebook = plan.root / stage.notebook
    papermill.execute_notebook(
        str(notebook), str(executed), parameters=plan.parameters[stage.name],
        kernel_name=KERNEL_NAME, cwd=str(notebook.parent), progress_bar=progress,
        request_save_on_cell_execute=True, start_timeout=120,
        kernel_manager_class=logged_kernel_manager(kernel_log(executed)), **engine_options())


def kernel_log(executed: Path) -> Path:
    """Where the kernel of an executed notebook writes its own output (``NN_name.kernel.log``)."""
    return executed.with_suffix(".kernel.log")


def _interrupted_in_kernel(error: BaseException) -> bool:
    """A KeyboardInterrupt raised inside the notebook (SIGINT reached the kernel)."""
    return getattr(error, "ename", None) == "KeyboardInterrupt"


def _demo_used(run_dir: Path, stage: Stage, parameters: dict[str, Any]) -> bool:
    if parameters.get(DEMO_PARAMETER) is True:
        return True
    record = artefacts.read_stage_record(run_dir, stage.record) or {}
    return bool(record.get(DEMO_PARAMETER) or
                (record.get("parameters") or {}).get(DEMO_PARAMETER))


class Run:
    """One execution of a plan: the manifest, the set-aside folder and the stage loop."""

    def __init__(self, plan: RunPlan, force: bool, progress: bool, command: list[str] | None,
                 echo: Callable[[str], Any]):
        self.plan, self.force, self.progress, self.echo = plan, force, progress, echo
        self.run_dir = plan.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stamp = now_iso().replace(":", "-")
        self.started = time.monotonic()
        self.outputs: dict[str, str | None] = {}
        previous = load_manifest(self.run_dir)
        previous_stages = previous.get("stages") if isinstance(previous.get("stages"), dict) else {}
        self.manifest = self._new_manifest(command)
        self.stages: dict[str, dict[str, Any]] = self.manifest["stages"]
        for name, entry in previous_stages.items():  # stages not run now keep their last state
            if name in STAGE_BY_NAME and isinstance(entry, dict):
                self.stages[name] = dict(entry, status_now="not selected")

    def _new_manifest(self, command: list[str] | None) -> dict[str, Any]:
        plan = self.plan
        return {
            "kit": {"name": "medsyn-utils", "version": package_versions(("medsyn-utils",)).get(
                "medsyn-utils")},
            "command": command if command is not None else ["medsyn", "run"],
            "params_file": str(plan.params_file),
            "params_sha256": file_sha256(plan.params_file),
            "overrides": plan.overrides,
            "run_dir": str(self.run_dir),
            "root": str(plan.root),
            "started_at": now_iso(), "ended_at": None, "duration_s": None,
            "status": "running", "exit_status": None, "error": None, "demo": False,
            "selected_stages": [stage.name for stage in plan.selected],
            "force": self.force,
            "parameters": plan.parameters,
            "git": git_state(plan.root),
            "packages": package_versions(),
            "python": sys.executable,
            "kernel": ensure_python_kernel(),
            "environment": {k: os.environ.get(k) for k in
                            ("MEDSYN_DATA_DIR", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")},
            "warnings": plan.warnings,
            "stages": {},
        }

    def save(self) -> None:
        models, artefact_rows, data = collect(self.run_dir, self.stages)
        self.manifest.update(models=models, artefacts=artefact_rows, data=data,
                             demo=any(e.get("demo") is True for e in self.stages.values()))
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)

    def set_aside_from(self, stage: Stage, *, include_self: bool) -> list[str]:
        """Move the outputs of ``stage`` (optionally) and of every stage after it aside."""
        stages = ([stage] if include_self else []) + later_stages(stage)
        paths = [path for other in stages for path in own_outputs(self.run_dir, other)]
        return set_aside(self.run_dir, paths, self.stamp)

    def execute(self) -> tuple[int, StageFailure | None]:
        selected = {stage.name for stage in self.plan.selected}
        position = 0
        for stage in STAGES:
            if stage.name not in selected:
                last = self.stages.get(stage.name, {})
                self.outputs[stage.name] = last.get("output_fingerprint") or last.get("fingerprint")
                continue
            position += 1
            label = f"[{position}/{len(selected)}] {stage.name:<10} {stage.notebook}"
            failure = self.run_stage(stage, label)
            if failure is not None:
                self.echo(f"{label}: FAILED")
                return 1, failure
        return 0, None

    def run_stage(self, stage: Stage, label: str) -> StageFailure | None:
        """Run (or skip) one stage; a :class:`StageFailure` when it failed."""
        run_dir, plan = self.run_dir, self.plan
        notebook = plan.root / stage.notebook
        executed = run_dir / "notebooks" / Path(stage.notebook).name
        last = self.stages.get(stage.name, {})
        if not notebook.is_file():  # removed after the plan was checked
            message = (f"stage {stage.name}: notebook {notebook} is missing: restore it "
                       f"(git checkout -- {stage.notebook}) or leave the stage out with --only")
            self.stages[stage.name] = {"notebook": stage.notebook, "status": "failed",
                                       "status_now": "failed", "error": {"message": message}}
            return StageFailure(message=message, error=message)
        parameters = plan.parameters[stage.name]
        try:
            inputs_used = stage_inputs(plan, stage)
        except MissingInputError as error:
            self.stages[stage.name] = {"notebook": stage.notebook, "status": "failed",
                                       "status_now": "failed", "error": {"message": str(error)}}
            return StageFailure(message=str(error), error=str(error))
        input_hashes = file_hashes(run_dir, inputs_used)
        notebook_sha = file_sha256(notebook)
        inputs = {name: self.outputs.get(name) for name in stage.after}
        fingerprint = stage_fingerprint(notebook_sha, parameters, inputs)
        record_kept = (run_dir / f"{stage.record}.json").is_file() or "warning" in last
        inputs_same = last.get("input_sha256", input_hashes) == input_hashes
        unchanged = (last.get("status") in ("ok", "skipped") and record_kept and inputs_same
                     and last.get("fingerprint") == fingerprint and executed.is_file())
        if unchanged and not self.force:
            self.echo(f"{label}: unchanged, skipped")
            self.stages[stage.name] = dict(last, status="skipped", status_now="skipped")
            self.outputs[stage.name] = last.get("output_fingerprint")
            self.save()
            return None
        self.echo(f"{label}: running")
        before = file_hashes(run_dir, [run_dir / name for name in stage.outputs])
        superseded = self._make_fresh(stage, last, fingerprint, input_hashes)
        (run_dir / f"{stage.record}.json").unlink(missing_ok=True)  # no stale record
        entry: dict[str, Any] = {
            "notebook": stage.notebook, "notebook_sha256": notebook_sha,
            "executed_notebook": str(executed.relative_to(run_dir)),
            "kernel_log": str(kernel_log(executed).relative_to(run_dir)),
            "record": f"{stage.record}.json", "parameters": parameters,
            "inputs": inputs, "input_sha256": input_hashes, "fingerprint": fingerprint,
            "status": "running", "status_now": "running",
            "started_at": now_iso(), "ended_at": None, "duration_s": None,
        }
        if parameters.get(DEMO_PARAMETER) is True:
            entry["demo"] = True
        if superseded:
            entry["superseded"] = superseded
            self.echo(f"{label}: earlier outputs moved to superseded/{self.stamp}/")
        self.stages[stage.name] = entry
        self.save()
        return self._run_notebook(stage, label, entry, executed, before)

    def _make_fresh(self, stage: Stage, last: dict[str, Any], fingerprint: str,
                    input_hashes: dict[str, str]) -> list[str]:
        """Set aside what a fresh execution must not resume from; the moved paths.

        ``--force``, a changed fingerprint, or a stage that does not resume (it would overwrite
        them): the stage's own outputs. Inputs whose content changed since the stage last started
        (even when that run left no record), or a store holding notes of other tasks: its outputs
        and those of every stage after it.
        """
        old_hashes = last.get("input_sha256")
        inputs_changed = old_hashes is not None and old_hashes != input_hashes
        if inputs_changed or store_mismatch(self.run_dir, stage):
            return self.set_aside_from(stage, include_self=True)
        changed = bool(last.get("fingerprint")) and last.get("fingerprint") != fingerprint
        if self.force or changed or not stage.resumes:
            return set_aside(self.run_dir, own_outputs(self.run_dir, stage), self.stamp)
        return []

    def _run_notebook(self, stage: Stage, label: str, entry: dict[str, Any], executed: Path,
                      before: dict[str, str]) -> StageFailure | None:
        tick = time.monotonic()
        try:
            _execute(stage, self.plan, executed, self.progress)
        except KeyboardInterrupt:
            self._interrupted(entry, tick)
            raise
        except Exception as error:  # papermill, nbclient (dead kernel, timeout), I/O
            if _interrupted_in_kernel(error):
                self._interrupted(entry, tick)
                raise KeyboardInterrupt from None
            failure = describe_failure(stage, error, executed)
            entry.update(status="failed", status_now="failed", ended_at=now_iso(),
                         duration_s=round(time.monotonic() - tick, 3),
                         error={"message": failure.message, "cell": failure.cell,
                                "source_line": failure.source_line, "error": failure.error})
            return failure
        finally:
            self._notes_follow_their_tasks(stage, entry, before)
        entry.update(status="ok", status_now="ran", ended_at=now_iso(),
                     duration_s=round(time.monotonic() - tick, 3))
        entry["output_fingerprint"] = output_fingerprint(entry["fingerprint"], entry["ended_at"])
        self.outputs[stage.name] = entry["output_fingerprint"]
        if _demo_used(self.run_dir, stage, entry["parameters"]):
            entry["demo"] = True
        if artefacts.read_stage_record(self.run_dir, stage.record) is None:
            entry["warning"] = f"the notebook wrote no stage record {stage.record}.json"
            self.echo(f"warning: {stage.notebook} wrote no stage record {stage.record}.json")
        self.echo(f"{label}: done in {entry['duration_s']:.1f} s")
        self.save()
        return None

    def _notes_follow_their_tasks(self, stage: Stage, entry: dict[str, Any],
                                  before: dict[str, str]) -> None:
        """When a stage rewrote its outputs with new content, later stages' outputs go aside too.

        A new ``tasks.parquet`` sends the old notes and scores to the same superseded folder as
        the old table (run with ``--only tasks`` the store would otherwise stay beside new tasks).
        """
        after = file_hashes(self.run_dir, [self.run_dir / name for name in stage.outputs])
        if not stage.outputs or after == before or not before:
            return
        moved = self.set_aside_from(stage, include_self=False)
        if moved:
            entry["superseded"] = entry.get("superseded", []) + moved
            self.echo(f"{stage.name}: its outputs changed; later outputs moved to "
                      f"superseded/{self.stamp}/")

    def _interrupted(self, entry: dict[str, Any], tick: float) -> None:
        entry.update(status="interrupted", status_now="interrupted", ended_at=now_iso(),
                     duration_s=round(time.monotonic() - tick, 3))
        self.manifest.update(status="interrupted", exit_status=130, ended_at=now_iso(),
                             duration_s=round(time.monotonic() - self.started, 3))
        self.save()

    def finish(self, status: int, failure: StageFailure | None) -> dict[str, Any]:
        for name in self.manifest["selected_stages"]:  # stages after a failure
            entry = self.stages.get(name)
            if entry is not None and entry.get("status_now") == "not selected":
                entry["status_now"] = "not run"
        self.manifest.update(status="ok" if status == 0 else "failed", exit_status=status,
                             ended_at=now_iso(),
                             duration_s=round(time.monotonic() - self.started, 3),
                             error=failure.message if failure else None)
        self.save()
        return self.manifest


def run_plan(plan: RunPlan, *, force: bool = False, progress: bool = True,
             command: list[str] | None = None, echo=print) -> tuple[int, dict[str, Any]]:
    """Execute a checked plan; return the exit status and the manifest written.

    Inputs are checked before anything runs (:class:`MissingInputError` naming the stage that
    makes a missing file). ``<run>/manifest.json`` is written atomically before the first stage
    and after every stage, so an interrupted run still says what finished.
    """
    check_inputs(plan)
    run = Run(plan, force, progress, command, echo)
    run.save()
    for warning in plan.warnings:
        echo(f"warning: {warning}")
    status, failure = run.execute()
    return status, run.finish(status, failure)
