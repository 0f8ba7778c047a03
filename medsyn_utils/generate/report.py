"""What a generation run did (counts, tokens, speed), built up batch by batch by either engine."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medsyn_utils.generate.store import GenerationStore, is_failed


@dataclass
class GenerationReport:
    """What a run did: counts, token totals and throughput (tokens/s, notes/min)."""

    store_path: str
    model_id: str
    backend: str
    prompt_form: str
    tasks_total: int
    already_done: int = 0
    generated: int = 0
    failed: int = 0
    pending_left: int = 0
    finish_reasons: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0          # generation wall time (model loading excluded)
    load_seconds: float = 0.0
    batch_size: int = 0
    batch_size_used: int = 0      # after out-of-memory splits
    licence: str | None = None
    engine: str = "local"
    notes_per_server: dict[str, int] = field(default_factory=dict)   # pool of endpoints
    set_aside: str | None = None  # where --force moved the old store
    rejected_lines: list[int] = field(default_factory=list)  # store lines that are not UTF-8

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def notes_per_min(self) -> float:
        return 60.0 * self.generated / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = round(self.tokens_per_s, 3)
        data["notes_per_min"] = round(self.notes_per_min, 3)
        data["seconds"] = round(self.seconds, 3)
        data["load_seconds"] = round(self.load_seconds, 3)
        return data


def new_report(store_path: Path, engine_name: str, spec, prompt_form: str, frame, already: int,
               batch_size: int, engine: str) -> GenerationReport:
    return GenerationReport(store_path=str(store_path), model_id=spec.model_id,
                            backend=engine_name, prompt_form=prompt_form, tasks_total=len(frame),
                            already_done=already, batch_size=batch_size, licence=spec.licence,
                            engine=engine)


def account(report: GenerationReport, reasons: Counter, records: list[dict[str, Any]],
            store: GenerationStore) -> None:
    """Append a batch's records to the store and add them to the report."""
    report.generated += store.append(records)
    for record in records:
        if is_failed(record):
            report.failed += 1
            continue
        reasons[record["finish_reason"]] += 1
        report.prompt_tokens += record.get("prompt_tokens") or 0
        report.completion_tokens += record.get("completion_tokens") or 0
