"""Notebook sources: jupytext pairing in sync, outputs stripped, one parameters cell, no model code."""
from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

from asdlib.study import PARAMETERS as STUDY_PARAMETERS
from asdlib.study.pipeline import NOTEBOOKS
from asdlib.study.run_config import EXTRA_PARAMETERS

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PARAMETERS = set(STUDY_PARAMETERS)


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_paired_notebook_is_in_sync_and_stripped(name):
    py, ipynb = NB_DIR / f"{name}.py", NB_DIR / f"{name}.ipynb"
    assert py.exists() and ipynb.exists(), f"run `make notebooks-sync` to pair {name}"
    a, b = jupytext.read(py), jupytext.read(ipynb)
    assert [(c.cell_type, c.source) for c in a.cells] == [(c.cell_type, c.source) for c in b.cells], \
        f"{ipynb} is out of date with {py}: run `make notebooks-sync`"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in _code(b)), f"{ipynb} has outputs"
    assert b.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_one_parameters_cell_and_no_model_code(name):
    nb = jupytext.read(NB_DIR / f"{name}.py")
    tagged = [c for c in _code(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert names == PARAMETERS | set(EXTRA_PARAMETERS.get(name, ()))
    for cell in _code(nb):
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"{name}: notebooks call asdlib; move {defined[0].name} into the library"
        imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"torch.nn", "torch.optim", "sklearn.metrics"}, f"{name} imports model/metric code"
