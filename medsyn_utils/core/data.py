"""Data registry: every source file with its canonical address, SHA-256 and licence.

Two ways to get a file:

* ``MEDSYN_DATA_DIR`` names an offline mirror laid out like the registry's ``local_path``
  column (the project's machines, CI and tests use ``../shared/data``). Files are read in place
  and their checksum is verified on first use.
* Otherwise pooch downloads the file from its canonical address into the user cache
  (``MEDSYN_CACHE_DIR`` or ``~/.cache/medsyn/data``), verifying the checksum; a download is
  written to a temporary file and moved into place only when complete.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pooch

from medsyn_utils.core.errors import DataError
from medsyn_utils.core.paths import cache_dir

DATA_DIR_VARIABLE = "MEDSYN_DATA_DIR"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{repo_path}"


@dataclass(frozen=True)
class Source:
    """One registered file."""

    name: str  # path inside the mirror, e.g. ``rumedbench/RuMedTop3/train_v1.jsonl``
    repo: str
    commit: str
    repo_path: str
    size: int
    sha256: str
    licence: str

    @property
    def url(self) -> str:
        return RAW_URL.format(repo=self.repo, commit=self.commit, repo_path=self.repo_path)


@lru_cache(maxsize=1)
def registry() -> dict[str, Source]:
    """All registered files, keyed by name (read from the packaged ``registry.tsv``)."""
    text = resources.files("medsyn_utils.core").joinpath("registry.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return {
        row["local_path"]: Source(
            name=row["local_path"], repo=row["repo"], commit=row["commit"],
            repo_path=row["repo_path"], size=int(row["bytes"]), sha256=row["sha256"],
            licence=row["licence"],
        )
        for row in rows
    }


def data_dir() -> Path | None:
    """The offline mirror named by ``MEDSYN_DATA_DIR``, or ``None`` (download mode)."""
    value = os.environ.get(DATA_DIR_VARIABLE)
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise DataError(f"{DATA_DIR_VARIABLE}={value} is not a folder: point it at an offline "
                        f"mirror laid out like shared/data, or unset it to download")
    return folder


_verified: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, computed once per process for each (path, size, mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = pooch.file_hash(str(path), alg="sha256")
    return _verified[key]


def _verify(path: Path, source: Source) -> str:
    """The file's actual SHA-256; :class:`DataError` when it differs from the registry."""
    actual = file_sha256(path)
    if actual != source.sha256:
        raise DataError(
            f"checksum mismatch for {source.name} at {path}: expected sha256 {source.sha256}, "
            f"got {actual}; restore it from {source.url} (or fix {DATA_DIR_VARIABLE})")
    return actual


def fetch(name: str) -> Path:
    """Local path of a registered file, verified against its SHA-256.

    Raises :class:`DataError` naming the file, the expected checksum, the address and the
    variable when the file is missing, corrupt or cannot be downloaded.
    """
    entries = registry()
    if name not in entries:
        raise DataError(f"unknown data file {name!r}: registered files are listed by "
                        f"`medsyn data check`")
    source = entries[name]
    mirror = data_dir()
    if mirror is not None:
        path = mirror / name
        if not path.is_file():
            hint = " (the mirror folder is empty)" if not any(mirror.iterdir()) else ""
            raise DataError(
                f"missing data file {name} in {DATA_DIR_VARIABLE}={mirror}{hint}: copy it from "
                f"{source.url} (sha256 {source.sha256}) or point {DATA_DIR_VARIABLE} at a "
                f"complete mirror")
        _verify(path, source)
        return path
    fetcher = pooch.create(path=cache_dir("data"), base_url="",
                           registry={name: f"sha256:{source.sha256}"}, urls={name: source.url})
    try:
        path = Path(fetcher.fetch(name, progressbar=False))
    except Exception as error:  # network errors, hash mismatch on download
        raise DataError(
            f"could not download {name} from {source.url} (sha256 {source.sha256}): "
            f"{type(error).__name__}: {error}; without internet set {DATA_DIR_VARIABLE} to an "
            f"offline mirror") from error
    _verify(path, source)
    return path


def check() -> list[dict[str, str]]:
    """Status of every registered file: ``ok``, ``missing`` or ``corrupt``, with its licence."""
    report = []
    for name, source in registry().items():
        try:
            path = fetch(name)
            status, where = "ok", str(path)
        except DataError as error:
            status = "missing" if "missing" in str(error) or "download" in str(error) else "corrupt"
            where = str(error)
        report.append({"name": name, "status": status, "licence": source.licence,
                       "url": source.url, "sha256": source.sha256, "where": where})
    return report


def licences() -> dict[str, str]:
    """Licence of each source group (first path component), for showing to users."""
    groups: dict[str, set[str]] = {}
    for name, source in registry().items():
        groups.setdefault(name.split("/")[0], set()).add(source.licence)
    return {group: "; ".join(sorted(values)) for group, values in groups.items()}


def checksums(names: list[str] | None = None) -> dict[str, str]:
    """SHA-256 of the named files (all by default), as registered (not read: see verified_checksums)."""
    entries = registry()
    return {name: entries[name].sha256 for name in (names or list(entries))}


def verified_checksums(names: list[str] | None = None) -> dict[str, str]:
    """SHA-256 of the files actually read for the named entries (all by default).

    Each file is fetched and verified (a mismatch is a :class:`DataError`); hashes are cached by
    path, size and mtime, so calling this before every use of a derived cache stays fast. Key
    derived caches (the graph pickle) on these, not on the registry.
    """
    entries = registry()
    found = {}
    for name in (names or list(entries)):
        path = fetch(name)
        found[name] = file_sha256(path)
    return found


def read_checksums(names: list[str]) -> dict[str, str | None]:
    """Like :func:`verified_checksums`, with ``None`` for a file that cannot be fetched now.

    For records written after the fact (the run manifest): a stage that read a file has already
    verified it, so its hash is cached; a file gone since is recorded as unknown, not guessed.
    """
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = verified_checksums([name])[name]
        except DataError:
            found[name] = None
    return found


def use_data_dir(folder: str | os.PathLike[str] | None) -> Path | None:
    """Point the registry at an offline mirror for this process (notebook ``data_dir`` parameter).

    An empty value keeps ``MEDSYN_DATA_DIR`` as it is. Returns the mirror in use, if any.
    """
    if folder:
        path = Path(folder).expanduser()
        if not path.is_absolute():
            from medsyn_utils.core.paths import resolve
            path = resolve(path)
        if not path.is_dir():
            raise DataError(f"data_dir={folder} is not a folder: point it at an offline mirror "
                            f"laid out like shared/data, or leave it empty to use "
                            f"{DATA_DIR_VARIABLE}")
        os.environ[DATA_DIR_VARIABLE] = str(path)
    return data_dir()
