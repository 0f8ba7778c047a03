"""The data registry: checksums, offline mirror, clear errors, licences."""

from __future__ import annotations

import json
import shutil

import pytest

from medsyn_utils.core import data
from medsyn_utils.cli.app import main
from medsyn_utils.core.errors import DataError

NAME = "medsyn/codes/top_ICD10_codes.txt"


def test_registry_lists_every_manifest_file(data_dir):
    manifest = (data_dir / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    names = {line.split("\t")[0] for line in manifest if line.strip()}
    entries = data.registry()
    assert names == set(entries)
    source = entries["rumedbench/RuMedTop3/train_v1.jsonl"]
    assert source.url.startswith("https://raw.githubusercontent.com/pavel-blinov/RuMedBench/")
    assert len(source.sha256) == 64 and source.licence.startswith("CC BY-NC")


def test_fetch_verifies_the_mirror(data_dir):
    path = data.fetch(NAME)
    assert path == data_dir / NAME


def _mirror_with(tmp_path, data_dir, content: bytes | None):
    mirror = tmp_path / "mirror"
    (mirror / NAME).parent.mkdir(parents=True)
    if content is not None:
        (mirror / NAME).write_bytes(content)
    (mirror / "README.md").write_text("x")
    return mirror


def test_corrupted_copy_is_refused(tmp_path, data_dir, monkeypatch):
    original = (data_dir / NAME).read_bytes()
    mirror = _mirror_with(tmp_path, data_dir, original.replace(b"J06", b"J07", 1))
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    with pytest.raises(DataError) as error:
        data.fetch(NAME)
    message = str(error.value)
    assert "checksum mismatch" in message and NAME in message
    assert data.registry()[NAME].sha256 in message and data.registry()[NAME].url in message
    assert data.DATA_DIR_VARIABLE in message and "\n" not in message


def test_intact_copy_in_another_mirror_is_accepted(tmp_path, data_dir, monkeypatch):
    mirror = _mirror_with(tmp_path, data_dir, (data_dir / NAME).read_bytes())
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    assert data.fetch(NAME) == mirror / NAME


def test_missing_file_and_empty_mirror(tmp_path, data_dir, monkeypatch):
    mirror = _mirror_with(tmp_path, data_dir, None)
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    with pytest.raises(DataError, match="missing data file medsyn/codes/top_ICD10_codes.txt"):
        data.fetch(NAME)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(empty))
    with pytest.raises(DataError, match="mirror folder is empty"):
        data.fetch(NAME)
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="is not a folder"):
        data.fetch(NAME)


def test_unknown_name():
    with pytest.raises(DataError, match="unknown data file"):
        data.fetch("nope.csv")


def test_data_check_cli_shows_licences(capsys, data_dir):
    assert main(["data", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {row["status"] for row in report} == {"ok"}
    assert all(row["licence"] for row in report)


def test_data_check_cli_reports_corruption(tmp_path, data_dir, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    shutil.copytree(data_dir, mirror)
    (mirror / NAME).write_text("broken")
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    assert main(["data", "check"]) == 1
    out = capsys.readouterr().out
    assert f"corrupt  {NAME}" in out


def test_verified_checksums_are_the_files_read_and_refuse_corruption(tmp_path, data_dir,
                                                                     monkeypatch):
    """Derived caches are keyed on these: a corrupted file never hides behind a warm cache."""
    assert data.verified_checksums([NAME]) == {NAME: data.registry()[NAME].sha256}
    original = (data_dir / NAME).read_bytes()
    mirror = _mirror_with(tmp_path, data_dir, original.replace(b"J06", b"J07", 1))
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    with pytest.raises(DataError, match="checksum mismatch"):
        data.verified_checksums([NAME])
    assert data.read_checksums([NAME]) == {NAME: None}  # a record never guesses a hash


def test_file_hash_is_cached_by_path_size_and_mtime(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("one")
    first = data.file_sha256(path)
    assert data.file_sha256(path) == first
    path.write_text("other")  # new size: hashed again
    assert data.file_sha256(path) != first


def test_graph_cache_key_needs_intact_inputs(tmp_path, data_dir, monkeypatch):
    from medsyn_utils.kg.graph import GRAPH_FILES, cache_key

    key = cache_key()
    name = sorted(GRAPH_FILES)[0]
    mirror = tmp_path / "mirror"
    shutil.copytree(data_dir, mirror)
    (mirror / name).write_bytes((mirror / name).read_bytes() + b"\n")
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(mirror))
    with pytest.raises(DataError, match=f"checksum mismatch for {name}"):
        cache_key()
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(data_dir))
    assert cache_key() == key
