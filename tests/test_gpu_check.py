"""benchmarks/gpu_check.sh, the GPU check, runs end to end on a CPU at toy size (--device cpu --tiny).

Its numbers mean nothing there; what is tested is that every step runs, the JSON is written
with each step's record and the checks, the table is printed, and that a Python without torch
is refused with a clear message. The GPU figures themselves are only measured on a GPU.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run(args: list[str], env: dict | None = None, timeout: int = 400) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_gpu_check_runs_every_step_on_cpu_at_toy_size(tmp_path):
    out = tmp_path / "out"
    r = run(["--device", "cpu", "--tiny", "--test-files", "tests/test_gpu.py", "--models", "iresnet50,mobilenetv2"],
            env={"PYTHON": sys.executable, "OUT": str(out)})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    data = json.loads((out / "gpu_check.json").read_text())
    assert data["complete"] and data["ok"] and data["tiny"]
    assert set(data["steps"]) == {"tests", "bench", "e2", "resume", "recon", "extrapolation", "compile"}
    assert data["steps"]["tests"]["counts"].get("skipped", 0) >= 1  # the gpu tests, skipped without a GPU
    assert {(r["model"], r["feed"]) for r in data["steps"]["bench"]["rows"]} == {
        (m, f) for m in ("iresnet50", "mobilenetv2") for f in ("resident", "synthetic")}
    assert set(data["steps"]["bench"]["data_path_share"]) == {"iresnet50", "mobilenetv2"}
    assert data["steps"]["resume"]["bit_identical"]  # CPU: the resumed run is the uninterrupted one
    e2 = data["steps"]["e2"]
    assert len(e2["epoch_train_s"]) == 2 and e2["dev_auc"] is not None
    ex = data["steps"]["extrapolation"]
    assert ex["total_hours"] > 0 and {"integrated", "individual", "transfer", "autoencoder"} <= set(ex["item_seconds"])
    assert "ALL PASSED" in r.stdout and (out / "gpu_check.log").is_file()


def test_gpu_check_refuses_a_python_without_torch(tmp_path):
    bare = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    probe = subprocess.run([bare, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        import pytest

        pytest.skip("no Python without torch on this machine")
    r = run([str(tmp_path / "out")], env={"PYTHON": bare})
    assert r.returncode == 3 and "cannot import torch" in r.stderr


def test_gpu_check_without_a_gpu_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this machine has a GPU")
    r = run([str(tmp_path / "out"), "--skip", "tests"], env={"PYTHON": sys.executable})
    assert r.returncode == 1 and "sees no CUDA device" in r.stdout
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["ok"] is False
