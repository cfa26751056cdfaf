"""The synthetic later editions: the edition's index parses every file written, the target
domain's attribute value moves the machine's sound, and the eval machines are first-shot."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asdlib.core.errors import AsdlibError, ConfigError
from asdlib.data.editions import EDITIONS, index_edition, read_eval_ground_truth
from asdlib.data.synth import render_clip
from asdlib.data.synth_edition import EditionSynthProfile, generate_edition

TINY = EditionSynthProfile("t", clip_seconds=0.5, n_source_train=6, n_target_train=10, n_test=3)


@pytest.fixture(scope="module")
def synth2023(tmp_path_factory):
    root = tmp_path_factory.mktemp("e") / "d2023"
    return generate_edition(root, 2023, TINY, seed=0, machines=["fan", "ToyCar", "bandsaw"])


def test_the_edition_index_parses_everything_written(synth2023):
    root = synth2023
    df = index_edition(root, 2023, ground_truth=root / "ground_truth")
    n_wav = sum(1 for _ in root.rglob("*.wav"))
    assert len(df) == n_wav == 3 * (6 + 10 + 4 * 3)
    assert set(df["machine"]) == {"fan", "ToyCar", "bandsaw"}
    assert set(df.loc[df.dataset == "eval", "machine"]) == {"bandsaw"}  # first-shot: an eval-only type
    train = df[df.split == "train"]
    per = train.groupby(["machine", "domain"]).size()
    assert (per.xs("target", level="domain") == 10).all() and (per.xs("source", level="domain") == 6).all()
    assert train["attributes"].map(lambda a: a["op"]).groupby(train["domain"]).agg(set).to_dict() == \
        {"source": {"1", "2"}, "target": {"3"}}
    test = df[df.split == "test"]
    assert test["label"].notna().all() and test["domain"].notna().all()
    assert (test.groupby(["machine", "domain", "label"]).size() == 3).all()
    # eval test names hide label and domain; the ground truth gives them
    ev = test[test.dataset == "eval"]
    assert ev["file"].str.fullmatch(r"section_00_\d{4}\.wav").all()
    gt = read_eval_ground_truth(root / "ground_truth", 2023)
    assert len(gt) == len(ev) and set(gt["label"]) == {0, 1}
    # the edition's clip lengths: ToyCar 12 s against 10 s, scaled by the profile
    toy = sf.info(str(next((root / "dev_data/ToyCar/train").glob("*.wav"))))
    fan = sf.info(str(next((root / "dev_data/fan/train").glob("*.wav"))))
    assert toy.frames == round(0.5 * 1.2 * 16000) and fan.frames == 8000 and fan.samplerate == 16000
    manifest = json.loads((root / "synth_manifest.json").read_text())
    assert manifest["synthetic"] and manifest["edition"] == 2023
    assert "Synthetic data" in (root / "SYNTHETIC.md").read_text()


def _log_spectrum(paths) -> np.ndarray:
    return np.mean([np.log(np.abs(np.fft.rfft(sf.read(str(p), dtype="float32")[0]))[:4000] ** 2 + 1e-9)
                    .reshape(-1, 50).mean(1) for p in paths], axis=0)  # (80,) 100-Hz bands


def test_the_target_domain_sounds_different(synth2023):
    train = synth2023 / "dev_data/fan/train"
    src = sorted(train.glob("*source*"))
    tgt = sorted(train.glob("*target*"))
    s1, s2, t = _log_spectrum(src[:3]), _log_spectrum(src[3:6]), _log_spectrum(tgt[:3])
    within, across = np.mean(np.abs(s1 - s2)), np.mean(np.abs(s1 - t))
    assert across > 2 * within, (within, across)


def test_render_clip_defaults_are_the_2020_machines():
    a = render_clip("fan", "00", False, 4000, np.random.default_rng(1))
    from asdlib.data.synth import machine_params

    b = render_clip("fan", "00", False, 4000, np.random.default_rng(1), params=machine_params("fan", "00"), speed=1.0)
    np.testing.assert_array_equal(a, b)


def test_generate_edition_checks_its_input(tmp_path, synth2023):
    with pytest.raises(ConfigError, match="2022-2025"):
        generate_edition(tmp_path / "x", 2021, TINY)
    with pytest.raises(ConfigError, match="machine type"):
        generate_edition(tmp_path / "x", 2023, TINY, machines=["lathe"])
    assert generate_edition(synth2023, 2023, TINY, seed=0, machines=["fan", "ToyCar", "bandsaw"]) == synth2023
    with pytest.raises(AsdlibError, match="not empty"):
        generate_edition(synth2023, 2023, TINY, seed=1, machines=["fan"])
    assert set(EDITIONS[2023].dev_machines) >= {"fan", "ToyCar"}


def test_a_failed_generation_leaves_the_old_dataset_and_no_temporary_folder(tmp_path, monkeypatch):
    import asdlib.data.synth_edition as synth_edition

    root = tmp_path / "data"
    generate_edition(root, 2023, TINY, seed=0, machines=["fan"])
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    calls = []

    def fail_midway(path, x, sample_rate):  # the third clip cannot be written
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")

    monkeypatch.setattr(synth_edition, "write_wav", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        generate_edition(root, 2023, TINY, seed=1, machines=["fan"], overwrite=True)
    assert len(calls) == 3
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # the finished dataset, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary or old folder left beside it
