"""asdlib reproduce --devices: the notebooks' models trained in parallel beforehand, then reused.

CPU workers stand in for GPUs: the models of notebooks 03 (E1's six models, E2), 05 (E5's
fine-tunings, which wait for E2) and 08 (an autoencoder and a WaveNet per type) are trained
by two worker processes, after which the experiments, run serially as the notebooks do,
find every run finished; their tidy results are identical to a serial run's from scratch.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from asdlib.core.errors import ConfigError
from asdlib.data.synth import SynthProfile, generate_dataset
from asdlib.study import parallel
from asdlib.study.context import Study
from asdlib.study.experiments import run_experiment
from asdlib.study.profiles import PROFILES

NOTEBOOKS = ("03_individual_vs_integrated", "05_transfer_learning", "08_reconstruction")
EXPERIMENTS = ("individual", "integrated", "transfer", "autoencoder", "wavenet")
# The smallest run that still trains every model: one epoch each, tiny widths, short clips (what is
# compared is that parallel and serial give the same numbers, not the numbers themselves).
TINY = PROFILES["ci"].__class__(
    name="tiny", synth="ci",
    classifier=PROFILES["ci"].classifier | {"epochs": 1, "eval_every": 1, "embedding_dim": 16, "schedule.T_0": 1,
                                            "schedule.T_up": 0},
    finetune=PROFILES["ci"].finetune | {"epochs": 1, "eval_every": 1, "schedule.T_0": 1},
    autoencoder={"epochs": 1}, wavenet={"epochs": 1},
    wavenet_model={"residual_channels": 8, "skip_channels": 8, "dilations": (1, 2)}, n_bootstrap=10, n_seeds=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    generate_dataset(root, SynthProfile("tiny", clip_seconds=0.5, n_train=4, n_test_normal=2, n_test_anomaly=2),
                     progress=False)
    return root


def open_study(data_root, work):
    return Study.open(data_root=str(data_root), profile=TINY, device="cpu", results_dir=str(work / "results"),
                      work_dir=str(work / "work"), progress=False)


def tidy_of(study) -> dict[str, pd.DataFrame]:
    return {name: run_experiment(study, name, save=False).tidy for name in EXPERIMENTS}


def test_parallel_pretraining_gives_the_serial_results(data_root, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    par = open_study(data_root, tmp_path / "parallel")
    rows = parallel.pretrain(par, NOTEBOOKS, ["cpu", "cpu"], threads=1, progress=False)
    first, second = parallel.plan(par, NOTEBOOKS)
    assert len(rows) == len(first) + len(second) == 7 + 12 + 12  # E1 + E2, 6 AE + 6 WaveNet, 6 types x 2 rules
    assert len({r["pid"] for r in rows}) == 2  # both workers took runs
    assert {r["status"] for r in rows} <= {"trained", "skipped"}

    # the serial code now finds every model finished: training it again would be an error
    from asdlib.classify import train

    def no_training(*args, **kwargs):
        raise AssertionError("a run was trained again")
    monkeypatch.setattr(train, "train_epoch", no_training)
    monkeypatch.setattr("asdlib.study.experiments.fit_autoencoder", no_training)
    monkeypatch.setattr("asdlib.study.experiments.fit_wavenet", no_training)
    reused = tidy_of(par)
    monkeypatch.undo()

    serial = tidy_of(open_study(data_root, tmp_path / "serial"))
    for name in EXPERIMENTS:
        pd.testing.assert_frame_equal(reused[name], serial[name], check_exact=True, obj=name)


def test_plan_covers_seeds_variants_and_reconstruction_once(data_root, tmp_path):
    study = open_study(data_root, tmp_path)
    study.n_seeds = 2
    first, second = parallel.plan(study, ("03_individual_vs_integrated", "04_loss_ablation", "05_transfer_learning",
                                          "06_tsne", "08_reconstruction"))
    per_seed = 6 + 1 + 5 + 6 + 6  # E1, E2 (once, though four notebooks use it), E3/E4 variants + improved, AE, WaveNet
    assert len(first) == 2 * per_seed and len(set(first)) == len(first)
    assert first[0].experiment != "individual" and first[-1].experiment in ("autoencoder", "wavenet")
    assert len(second) == 2 * 12 and {j.experiment for j in second} == {"transfer"}
    assert parallel.plan(study, ("01_data_exploration", "09_summary")) == ([], [])


def test_devices_must_match_the_notebooks_device():
    assert parallel.worker_devices(["0", "cuda:1"], "cuda") == [("0", "cuda"), ("1", "cuda")]
    assert parallel.worker_devices(["cpu", "cpu"], "cpu") == [(None, "cpu"), (None, "cpu")]
    with pytest.raises(ConfigError, match="--device cuda"):
        parallel.worker_devices(["0", "1"], "cpu")
    with pytest.raises(ConfigError, match="give GPU indices"):
        parallel.worker_devices(["gpu0"], "cuda")


def test_auto_devices_are_one_cpu_worker_per_core_and_the_cli_default():
    from asdlib.cli.main import build_parser
    from asdlib.cli.reproduce import parse_devices

    assert parallel.auto_devices("cpu", cores=2) == ("cpu", "cpu")
    assert parallel.auto_devices("cpu", cores=1) == ()  # one core: the notebooks train, no pool
    assert parallel.auto_devices("cpu", cores=64) == ("cpu",) * parallel.AUTO_MAX_WORKERS
    assert parallel.auto_devices("cuda", cores=16) == ()  # one GPU: serial, in the notebooks
    assert parse_devices(build_parser().parse_args(["reproduce"]).devices) == ("auto",)
    assert parse_devices("none") == () and parse_devices("cpu, cpu") == ("cpu", "cpu")


def test_auto_devices_resolve_in_the_pretrain_step(tmp_path, monkeypatch):
    from asdlib.study import pipeline

    seen = {}
    monkeypatch.setattr("asdlib.study.run_config.usable_cores", lambda cap=8: 2)
    monkeypatch.setattr("asdlib.study.context.Study.open", classmethod(lambda cls, **kw: "study"))
    monkeypatch.setattr(parallel, "pretrain", lambda study, notebooks, devices, progress=True: seen.update(
        devices=devices) or [])
    cfg = pipeline.ReproduceConfig(profile="ci", device="cpu", devices=("auto",), work_dir=str(tmp_path))
    params = dict(data_root=str(tmp_path), synthetic=True, profile="ci", device="cpu", seed=0, seeds=None,
                  results_dir=str(tmp_path), work_dir=str(tmp_path))
    assert pipeline._pretrain(cfg, params, ["03_individual_vs_integrated"], progress=False)["step"] == "pretrain"
    assert seen["devices"] == ("cpu", "cpu")
    monkeypatch.setattr("asdlib.study.run_config.usable_cores", lambda cap=8: 1)
    assert pipeline._pretrain(cfg, params, ["03_individual_vs_integrated"], progress=False) is None


def test_reproduce_pretrains_only_the_notebooks_it_will_run(tmp_path, monkeypatch):
    from asdlib.cli.main import build_parser
    from asdlib.study import pipeline

    args = build_parser().parse_args(["reproduce", "--devices", "cpu, cpu", "--device", "cpu"])
    assert args.devices == "cpu, cpu"
    calls = []
    monkeypatch.setattr(pipeline, "_pretrain", lambda cfg, params, notebooks, progress: calls.append(notebooks) or
                        {"step": "pretrain", "seconds": 0.0, "status": "ran"})
    monkeypatch.setattr(pipeline, "prepare_data", lambda cfg, progress=True: (str(tmp_path), True))
    monkeypatch.setattr(pipeline, "run_notebook", lambda source, output, params, cwd, progress: output.write_text("{}"))
    monkeypatch.setattr("asdlib.study.site.build_site", lambda results, progress=True: None)
    cfg = pipeline.ReproduceConfig(profile="ci", device="cpu", devices=("cpu", "cpu"), results_dir=str(tmp_path / "r"),
                                   work_dir=str(tmp_path / "w"), notebooks=("02_feature_extraction", "03_individual_vs_integrated"))
    steps = [r["step"] for r in pipeline.reproduce(cfg, progress=False)]
    assert steps[:2] == ["data", "pretrain"] and calls == [["02_feature_extraction", "03_individual_vs_integrated"]]
    pipeline.reproduce(cfg, progress=False)  # unchanged notebooks: nothing left to pre-train
    assert calls[-1] == []
