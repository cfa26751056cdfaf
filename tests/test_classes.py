"""(machine, section, attribute) classes of an edition index, fed to the training path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asdlib.classify.config import TrainConfig
from asdlib.classify.train import fit
from asdlib.core.errors import ConfigError
from asdlib.data.classes import class_map, clip_class, edition_classes
from asdlib.data.editions import index_edition


def _touch(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def _small_2023(root: Path) -> None:
    for rel in ("dev_data/fan/train/section_00_source_train_normal_0000_m-n_W_n_1.wav",
                "dev_data/fan/train/section_00_source_train_normal_0001_m-n_W_n_1.wav",
                "dev_data/fan/train/section_00_source_train_normal_0002_m-n_X_n_1.wav",
                "dev_data/fan/train/section_00_target_train_normal_0000_m-n_Y_n_2.wav",
                "dev_data/fan/test/section_00_target_test_anomaly_0000_m-n_Y_n_2.wav",
                "dev_data/fan/test/section_00_source_test_normal_0000_m-n_Z_n_1.wav",
                "dev_data/slider/train/section_00_source_train_normal_0000_noAttribute.wav",
                "dev_data/slider/train/section_00_target_train_normal_0000_noAttribute.wav",
                "dev_data/slider/test/section_00_target_test_normal_0000_noAttribute.wav"):
        _touch(root, rel)
    for m in ("fan", "slider"):
        (root / "dev_data" / m / "attributes_00.csv").write_text("file_name,d1p,d1v\n")


def test_classes_of_a_small_2023_index(tmp_path):
    _small_2023(tmp_path)
    index = index_edition(tmp_path, 2023)
    train = index[index["split"] == "train"]
    labels, names = edition_classes(train)
    assert names == ["fan/00/m-n_W_n_1", "fan/00/m-n_X_n_1", "fan/00/m-n_Y_n_2", "slider/00"]
    got = dict(zip(train["file"], (names[k] for k in labels)))
    assert got["section_00_target_train_normal_0000_m-n_Y_n_2.wav"] == "fan/00/m-n_Y_n_2"
    assert got["section_00_source_train_normal_0000_noAttribute.wav"] == "slider/00"  # noAttribute: one per section
    assert got["section_00_target_train_normal_0000_noAttribute.wav"] == "slider/00"
    cmap = class_map(train)
    test = index[index["split"] == "test"]
    with pytest.raises(ConfigError, match="m-n_Z_n_1"):  # an attribute value only the test set has
        cmap.labels(test)
    np.testing.assert_array_equal(cmap.labels(test, unknown="ignore"), [-1, 2, 3])
    sections = class_map(train, level="section")
    assert sections.names == ("fan/00", "slider/00")
    np.testing.assert_array_equal(sections.labels(test), [0, 0, 1])


def test_2020_ids_are_the_case_without_attributes():
    assert clip_class("fan", "00") == clip_class("fan", "00", {}) == "fan/00"  # the study's class name
    assert clip_class("fan", "00", {"m-n": "W"}, level="section") == "fan/00"
    with pytest.raises(ConfigError, match="class level"):
        clip_class("fan", "00", level="machine")


def test_attribute_classes_train_a_classifier(tmp_path):
    _small_2023(tmp_path)
    train = index_edition(tmp_path, 2023).query("split == 'train'").reset_index(drop=True)
    labels, names = edition_classes(train)
    feats = np.random.default_rng(0).normal(size=(len(train), 16, 24)).astype(np.float32)
    cfg = TrainConfig.from_dict({"model": "iresnet50", "width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 8,
                                 "batch_size": 2, "epochs": 1, "val_fraction": 0.0, "eval_every": 1, "device": "cpu",
                                 "amp": False}, strict=True)
    res = fit(feats, labels, cfg, tmp_path / "run", class_names=names, progress=False)
    assert res.class_names == names and len(names) == 4
