"""environment.yml must install the same packages at the same versions as pyproject.toml."""
from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _environment_pip_requirements() -> set[tuple[str, str]]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1 :]:
        m = re.match(r"^\s+-\s+(.+)$", line)
        if not m:
            break
        if not m.group(1).startswith("-e"):
            reqs.append(_norm(m.group(1)))
    return set(reqs)


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert _environment_pip_requirements() == wanted


def test_torch_pins_are_the_working_pair():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = dict(_norm(r) for r in project["dependencies"])
    assert deps["torch"] == "==2.14.1" and deps["torchaudio"] == "==2.11.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
