"""The test session itself: ``make test`` spreads the suite over the cores with pytest-xdist, and
the tests that read the shared CI-size run (``ci_study``, tests/conftest.py) must all go to one
worker, or each worker would make that run again (two minutes each on the README's machine)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_ci_study_tests_share_one_worker_under_xdist(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import os, pytest\n"
        "from conftest_asdlib import pytest_itemcollected  # noqa: F401 (the hook under test)\n"
        "@pytest.fixture(scope='session')\n"
        "def ci_study():\n"
        "    return os.environ['PYTEST_XDIST_WORKER']\n")
    (tmp_path / "conftest_asdlib.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    for k in range(8):  # without the grouping, xdist hands these round-robin to both workers
        (tmp_path / f"test_uses_{k}.py").write_text(
            "import os\n"
            f"def test_{k}(ci_study):\n"
            f"    open('worker_{k}.txt', 'w').write(ci_study)\n"
            f"def test_free_{k}():\n"
            "    pass\n")
    env = os.environ | {"ASDLIB_NO_SPEED": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                          "--dist", "loadgroup", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    workers = {(tmp_path / f"worker_{k}.txt").read_text() for k in range(8)}
    assert len(workers) == 1, f"the ci_study tests ran on {sorted(workers)}: the run would be made once per worker"
