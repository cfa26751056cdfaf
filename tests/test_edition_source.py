"""Notebook 10's DCASE2023 data (issue 19.5): the real development subset where Zenodo answers, else the
synthetic edition, by the DCASE2020 data's rules (asdlib.study.source), and the parameter notebook 10 gets.

A local fake Zenodo serves the seven DCASE2023 development archives, each a few short synthetic clips
named as the real ones; a one-clip profile stands in for ``small``. No notebook runs here."""
from __future__ import annotations

import functools
import socket
from dataclasses import replace

import pytest
from zenodo_server import FakeZenodo, synth_clip, zip_bytes

from asdlib.cli.main import main
from asdlib.core.errors import ConfigError, DownloadError
from asdlib.data import edition_subset as es
from asdlib.data.editions import EDITIONS, index_edition
from asdlib.study import pipeline, source
from asdlib.study.run_config import EDITION_NOTEBOOK, ReproduceConfig, notebook_parameters

PROFILE = es.EditionSubsetProfile("test-small", n_source_train=1, n_target_train=None, n_test=1)


def _dev_archives() -> dict[str, bytes]:
    """Per dev machine: 2 source + 1 target train clips, 2 test clips per (domain, label), attributes_00.csv."""
    ed = EDITIONS[2023]
    files, seed = {}, 0
    for m in ed.dev_machines:
        names = [f"{m}/train/section_00_source_train_normal_{i:04d}_a_{i}.wav" for i in range(2)]
        names += [f"{m}/train/section_00_target_train_normal_0000_a_9.wav"]
        names += [f"{m}/test/section_00_{d}_test_{lab}_{i:04d}_a_{i}.wav" for d in ("source", "target")
                  for lab in ("normal", "anomaly") for i in range(2)]
        members = []
        for n in names:
            seed += 1
            members.append((n, synth_clip(seed, seconds=0.1, anomaly="_anomaly_" in n)))
        rows = ["file_name,d1p,d1v"] + [f"{n},a,{n.rsplit('_', 1)[-1][:-4]}" for n in names]
        members.append((f"{m}/attributes_00.csv", ("\n".join(rows) + "\n").encode()))
        files[ed.archives.name("dev", m)] = zip_bytes(members)
    return files


@pytest.fixture
def zenodo2023():
    with FakeZenodo(files=_dev_archives()) as srv:
        for name in srv.files:
            srv.records[name] = EDITIONS[2023].records.dev
        yield srv


@pytest.fixture
def sources(monkeypatch, tmp_path):
    """Both sources' folders under tmp_path, the one-clip profile for 2023, fetches without pauses."""
    monkeypatch.setitem(es.EDITION_PROFILES, PROFILE.name, PROFILE)
    monkeypatch.setattr(source, "DCASE2020", replace(source.DCASE2020, root=str(tmp_path / "d2020")))
    monkeypatch.setattr(source, "DCASE2023", replace(source.DCASE2023, root=str(tmp_path / "d2023"),
                                                     profile=PROFILE.name))
    monkeypatch.setattr(es, "fetch_edition_subset", functools.partial(
        es.fetch_edition_subset, min_interval=0.0, timeout=5.0, retries=1, tail_bytes=16 << 10))
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    ran: list[ReproduceConfig] = []
    monkeypatch.setattr(pipeline, "reproduce", lambda cfg: ran.append(cfg) or [])
    return ran


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/record"


def _reproduce(tmp_path, *extra: str) -> None:
    assert main(["reproduce", "--results-dir", str(tmp_path / "results"), *extra]) == 0


def test_auto_fetches_the_2023_subset_and_notebook_10_gets_it(sources, zenodo2023, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ASDLIB_ZENODO_URL", zenodo2023.url)  # serves no DCASE2020 file: notebooks 01-09 synthetic
    _reproduce(tmp_path, "--data", "auto")
    (cfg,) = sources
    root = str((tmp_path / "d2023").resolve())
    assert cfg.data_root is None and cfg.edition_root == root
    assert "notebook 10 data (DCASE2023 subset): real (Zenodo reachable" in capsys.readouterr().out
    assert notebook_parameters(cfg, EDITION_NOTEBOOK, {"seed": 0}) == {"seed": 0, "edition_root": root}
    assert "edition_root" not in notebook_parameters(cfg, "01_data_exploration", {"seed": 0})
    assert es.edition_subset_complete(root, 2023, PROFILE, parts=["dev"])
    index = index_edition(root, 2023)  # every dev machine, with its attributes file
    assert set(index["machine"]) == set(EDITIONS[2023].dev_machines)
    assert len(index) == 7 * (1 + 1 + 4)
    # what the results say: real, and no absolute path of this machine
    note = pipeline.edition_data_note(cfg)
    assert "real DCASE2023 development clips" in note and "`d2023`" in note and str(tmp_path) not in note
    assert not pipeline.edition_synthetic(cfg)
    shown = pipeline.shown_paths({"edition_root": cfg.edition_root, "edition_note": cfg.edition_note})
    assert shown["edition_root"] == "d2023" and str(tmp_path) not in shown["edition_note"]


def test_a_verified_subset_on_disk_is_used_without_the_network(sources, zenodo2023, tmp_path):
    src = source.DCASE2023
    root = tmp_path / "d2023"
    source.settle_data(source.choose_data("auto", base_url=zenodo2023.url, source=src), zenodo2023.url,
                       progress=False, source=src)
    offline = _closed_url()  # nothing answers there
    choice = source.choose_data("auto", base_url=offline, source=src)
    assert choice.kind == "real" and "not asked" in choice.reason and str(tmp_path) not in choice.reason
    settled = source.settle_data(choice, offline, progress=False, source=src)  # verified: no request needed
    assert settled.kind == "real" and settled.root == str(root.resolve())
    # a clip gone (or changed): not complete, so the probe decides, and fails here
    next(root.glob("dev_data/valve/test/*.wav")).write_bytes(b"RIFF")
    assert not es.edition_subset_complete(root, 2023, PROFILE, parts=["dev"])
    assert source.choose_data("auto", base_url=offline, timeout=2.0, source=src).kind == "synthetic"


def test_no_zenodo_leaves_edition_root_none(sources, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ASDLIB_ZENODO_URL", _closed_url())
    _reproduce(tmp_path, "--data", "auto")
    (cfg,) = sources
    assert cfg.edition_root is None and "not reachable" in cfg.edition_note
    assert "the synthetic DCASE2023 edition is used instead" in cfg.edition_note
    assert notebook_parameters(cfg, EDITION_NOTEBOOK, {})["edition_root"] is None
    assert pipeline.edition_synthetic(cfg) and "synthetic DCASE2023 edition" in pipeline.edition_data_note(cfg)
    assert "notebook 10 data (DCASE2023 subset): synthetic" in capsys.readouterr().out


def test_a_failed_fetch_falls_back_unless_real_is_forced(sources, zenodo2023, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ASDLIB_ZENODO_URL", zenodo2023.url)
    zenodo2023.ignore_range = True  # the probe's byte comes (whole file, 2xx); the archives cannot be read in parts
    _reproduce(tmp_path, "--data", "auto")
    (cfg,) = sources
    assert cfg.edition_root is None and "ignored the Range request" in cfg.edition_note
    assert "DCASE2023 subset: the real subset could not be fetched" in capsys.readouterr().out
    src = source.DCASE2023
    with pytest.raises(DownloadError, match="ignored the Range request"):
        source.settle_data(source.choose_data("real", source=src), progress=False, source=src)


def test_edition_root_given_is_passed_without_a_probe(sources, monkeypatch, tmp_path):
    monkeypatch.setenv("ASDLIB_ZENODO_URL", _closed_url())
    local = tmp_path / "my-dcase2023"
    local.mkdir()
    _reproduce(tmp_path, "--data", "synthetic", "--edition-root", str(local))
    (cfg,) = sources
    assert cfg.edition_root == str(local) and cfg.edition_note == "--edition-root given"
    assert notebook_parameters(cfg, EDITION_NOTEBOOK, {})["edition_root"] == str(local.resolve())
    # --only without notebook 10: no edition data is chosen
    _reproduce(tmp_path, "--data", "auto", "--only", "01_data_exploration")
    assert sources[1].edition_root is None and sources[1].edition_note == ""
    with pytest.raises(ConfigError, match="--edition-root .*missing is not a folder"):
        notebook_parameters(replace(cfg, edition_root=str(tmp_path / "missing")), EDITION_NOTEBOOK, {})


def test_the_caption_names_the_real_subset_without_the_machine_path(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from asdlib.study.later_editions import EditionData, caption

    index = pd.DataFrame({"machine": ["valve"] * 3, "split": ["train", "test", "test"]})
    study = SimpleNamespace(profile=SimpleNamespace(name="real"), seeds_text="3 seeds")
    data = EditionData(2023, (tmp_path / "dcase2023-small").resolve(), False, index, np.zeros((3, 1, 1)))
    text = caption(data, study)
    assert "REAL DCASE2023 development clips under dcase2023-small;" in text and str(tmp_path) not in text
    assert "SYNTHETIC" in caption(EditionData(2023, tmp_path, True, index, np.zeros((3, 1, 1))), study)


def test_readme_gives_the_computed_size_of_notebook_10s_subset():
    from pathlib import Path

    f = es.edition_subset_figures(2023, "small", None, ["dev"])
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"({f.clips} clips, {f.clip_bytes:,} B computed, about {f.requests} requests)" in readme.replace("\n", " ")
    assert f"`data/{source.DCASE2023.folder}`" in readme
