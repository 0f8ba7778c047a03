"""environment.yml (conda users) and pyproject.toml (pip users) describe the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _pip_section(env: dict) -> list[str]:
    for item in env["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            return item["pip"]
    raise AssertionError("environment.yml has no pip section")


def test_package_lists_agree():
    project = _pyproject()["project"]
    wanted = {_name(r): r.strip() for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():  # dev, browser, cluster: all installed by make
        wanted.update({_name(r): r.strip() for r in extra})
    pip = [r for r in _pip_section(_environment()) if not r.startswith("-e")]
    listed = {_name(r): r.strip() for r in pip}
    assert set(listed) == set(wanted), (
        f"only in environment.yml: {sorted(set(listed) - set(wanted))}; "
        f"only in pyproject.toml: {sorted(set(wanted) - set(listed))}")
    for name, requirement in wanted.items():
        if name != "torch":
            assert listed[name] == requirement, f"{name}: {listed[name]} vs {requirement}"


def test_torch_is_pinned_first_everywhere():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pinned = re.search(r"TORCH_VERSION \?= (\S+)", makefile).group(1)
    pip = _pip_section(_environment())
    assert pip[0] == f"torch=={pinned}", "torch must come first and pinned in environment.yml"
    assert "-e ." in pip or "-e .[dev]" in pip


def test_python_version_agrees():
    conda = [d for d in _environment()["dependencies"] if isinstance(d, str)]
    python = next(d for d in conda if d.startswith("python"))
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    assert python in ("python=3.11", "python=3.12")
