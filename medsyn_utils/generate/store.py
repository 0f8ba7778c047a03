"""The generation store: one JSON object a line, appended as each batch finishes.

A run may die at any moment (kill -9, power, out of memory). The store is built so that no
finished note is lost and none is written twice:

* each batch is appended with one ``write``, then flushed and fsynced;
* a restart reads the task ids already there and generates only the others;
* a torn last line (the process died mid-write) is cut off on open and its task regenerated;
* records whose task id is already stored are skipped, so a task appears exactly once;
* an advisory lock stops two runs from appending to the same store at once;
* a failed note (``finish_reason`` ``empty``/``error``, reason in ``error``) is kept as a record
  but does not count as done: the next run tries its task again, and a later note for the task
  takes its place in :func:`read_records`.

Fields of each record: :data:`medsyn_utils.core.schema.STORE_FIELDS`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.provenance import json_default
from medsyn_utils.core.schema import STORE_FIELDS

# finish_reason of a record that is not a note.
FAILED_REASONS = ("empty", "error")

try:  # POSIX advisory locks; elsewhere the store simply is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def is_failed(record: Mapping[str, Any]) -> bool:
    """A stored record that is not a note (its task is tried again on the next run)."""
    response = record.get("response")
    return (record.get("finish_reason") in FAILED_REASONS or bool(record.get("error"))
            or not isinstance(response, str) or not response.strip())


def encode_record(record: Mapping[str, Any]) -> str:
    """One store line (with its newline), fields in :data:`STORE_FIELDS` order."""
    missing = [name for name in STORE_FIELDS if name not in record]
    if missing:
        raise InputTableError(f"store record for task {record.get('task_id')!r} lacks fields "
                              f"{missing}: records need every field of schema.STORE_FIELDS")
    ordered = {name: record[name] for name in STORE_FIELDS}
    return json.dumps(ordered, ensure_ascii=False, default=json_default) + "\n"


def _scan(data: bytes, path: Path, rejected: list[int] | None = None
          ) -> tuple[list[dict[str, Any]], int]:
    """Parse complete lines; return the records and the byte length of the good prefix.

    A last line without its newline, or a last line that is not JSON, is torn: it is left out
    of the good prefix. A complete line that is not UTF-8 text cannot be a torn write of the
    kit (it writes UTF-8 and ends each record with its newline): it is kept in the file, set
    aside and its number added to ``rejected``. Any other bad line means the file was edited by
    hand.
    """
    records: list[dict[str, Any]] = []
    good = 0
    position = 0
    lines = data.split(b"\n")
    complete = lines[:-1]  # the piece after the last newline is empty or torn
    for number, raw in enumerate(complete, start=1):
        end = position + len(raw) + 1
        if raw.strip():
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                if rejected is not None:
                    rejected.append(number)
                position = good = end
                continue
            try:
                value = json.loads(text)
                if not isinstance(value, dict) or "task_id" not in value:
                    raise ValueError("not a store record")
            except (ValueError, RecursionError):
                if number == len(complete):  # last line: treat as torn
                    return records, good
                raise InputTableError(f"store {path} line {number} is not a JSON record: delete "
                                      f"that line (its task is regenerated on the next run)") from None
            records.append(value)
        position = end
        good = end
    return records, good


def latest_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per task id, in order of first appearance: its first note, or, when it has
    none, its last failed record."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in records:
        task_id = str(record["task_id"])
        held = chosen.get(task_id)
        if held is None or is_failed(held):  # a note is kept; a failed record gives way
            chosen[task_id] = dict(record)
    return list(chosen.values())


def read_records(path: str | os.PathLike[str], rejected: list[int] | None = None
                 ) -> list[dict[str, Any]]:
    """All complete records, one per task id (see :func:`latest_records`), torn tail ignored;
    the numbers of complete lines that are not UTF-8 go to ``rejected``."""
    path = Path(path)
    if not path.is_file():
        return []
    records, _ = _scan(path.read_bytes(), path, rejected)
    return latest_records(records)


def read_store(path: str | os.PathLike[str]):
    """The store as a DataFrame with the :data:`STORE_FIELDS` columns (for the scoring stage)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"generation store {path} does not exist: run the generation stage "
                              f"(notebook 03 or `medsyn generate`) first")
    records = read_records(path)
    frame = pd.DataFrame.from_records(records, columns=list(STORE_FIELDS))
    return frame


class GenerationStore:
    """An open, locked, append-only store. Use as a context manager.

    >>> with GenerationStore("outputs/run/generations.jsonl") as store:
    ...     pending = [t for t in task_ids if t not in store.done]
    ...     store.append(records)
    """

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True) -> None:
        self.path = Path(path)
        self.lock = lock
        self.done: set[str] = set()
        self.repaired_bytes = 0
        self.rejected_lines: list[int] = []  # complete lines that are not UTF-8, left in place
        self._fd: int | None = None

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> "GenerationStore":
        """Lock the file, cut a torn last line, and load the ids of finished tasks."""
        if self._fd is not None:
            return self
        if self.path.exists() and not self.path.is_file():
            raise InputTableError(f"store path {self.path} is not a file: pass a .jsonl file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if self.lock and fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise InputTableError(f"store {self.path} is being written by another run: "
                                          f"wait for it to finish or pass another output path") from None
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
            records, good = _scan(data, self.path, self.rejected_lines)
            if good < size:
                os.ftruncate(fd, good)
                os.fsync(fd)
                self.repaired_bytes = size - good
            self.done = {str(record["task_id"]) for record in records if not is_failed(record)}
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None

    def __enter__(self) -> "GenerationStore":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append records durably (one write, fsync); skip task ids already holding a note.

        Returns how many notes (not failed records) were written.
        """
        if self._fd is None:
            raise InputTableError(f"store {self.path} is not open: use it as a context manager")
        lines = []
        fresh: list[str] = []
        failed: list[str] = []
        for record in records:
            task_id = str(record.get("task_id"))
            if task_id in self.done or task_id in fresh or task_id in failed:
                continue
            lines.append(encode_record(record))
            (failed if is_failed(record) else fresh).append(task_id)
        if not lines:
            return 0
        payload = "".join(lines).encode("utf-8")
        view = memoryview(payload)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as error:  # disk full: name the store (the torn tail is cut on reopen)
            raise OSError(error.errno, error.strerror, str(self.path)) from error
        self.done.update(fresh)
        return len(fresh)

    def __len__(self) -> int:
        return len(self.done)
