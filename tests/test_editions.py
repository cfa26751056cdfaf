"""The editions table, the file-name parser and the per-edition index (asdlib.data.editions)."""
from __future__ import annotations

from pathlib import Path

import pytest

from asdlib.core.errors import ConfigError, DatasetLayoutError
from asdlib.data.editions import (
    EDITIONS,
    get_edition,
    index_edition,
    min_clip_seconds,
    parse_attributes,
    parse_clip,
    read_eval_ground_truth,
    summarize_edition,
)

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "official-eval"


def test_every_edition_is_a_consistent_table():
    assert set(EDITIONS) == {2020, 2021, 2022, 2023, 2024, 2025}
    for year, ed in EDITIONS.items():
        assert ed.year == year
        for m in ed.dev_machines:
            assert ed.sections(m, "dev"), (year, m)
        for m in ed.eval_machines:
            assert ed.sections(m, "eval"), (year, m)
        assert len({ed.records.dev, ed.records.additional, ed.records.eval}) == 3
        for m in ed.machines:
            assert 6.0 <= min_clip_seconds(ed, m) <= ed.seconds(m) <= 12.0
    assert EDITIONS[2021].train_counts == {"source": 1000, "target": 3}
    assert EDITIONS[2023].train_counts == {"source": 990, "target": 10}
    assert EDITIONS[2023].seconds("ToyCar") == 12.0 and EDITIONS[2023].seconds("valve") == 10.0
    assert EDITIONS[2024].archives.name("additional", "3DPrinter") == "eval_data_3DPrinter_train_r2.zip"
    assert EDITIONS[2024].archives.name("additional", "Scanner") == "eval_data_Scanner_train.zip"
    assert EDITIONS[2025].supplemental_folder == "supplemental"
    assert get_edition("dcase2023") is EDITIONS[2023]


@pytest.mark.parametrize("edition, rel, want", [
    (2023, "dev_data/fan/train/section_00_source_train_normal_0040_m-n_X.wav",
     ("dev", "fan", "00", "source", "train", "normal", {"m-n": "X"}, 40)),
    (2023, "dev_data/valve/test/section_00_target_test_anomaly_0044_pat_03.wav",
     ("dev", "valve", "00", "target", "test", "anomaly", {"pat": "03"}, 44)),
    (2023, "eval_data/bandsaw/test/section_00_0007.wav", ("eval", "bandsaw", "00", None, "test", None, {}, 7)),
    (2022, "eval_data/fan/test/section_04_0012.wav", ("eval", "fan", "04", None, "test", None, {}, 12)),
    (2021, "dev_data/pump/source_test/section_01_source_test_anomaly_0003.wav",
     ("dev", "pump", "01", "source", "test", "anomaly", {}, 3)),
    (2021, "eval_data/pump/target_test/section_05_target_test_0099.wav",
     ("eval", "pump", "05", "target", "test", None, {}, 99)),
    (2024, "eval_data/3DPrinter/train/section_00_source_train_normal_0001_noAttribute.wav",
     ("eval", "3DPrinter", "00", "source", "train", "normal", {}, 1)),
    (2025, "dev_data/fan/supplemental/section_00_clean_0003.wav",
     ("dev", "fan", "00", None, "supplemental", None, {"name": "clean_0003"}, 3)),
    (2020, "dev_data/ToyCar/test/anomaly_id_01_00000012.wav",
     ("dev", "ToyCar", "01", None, "test", "anomaly", {}, 12)),
    (2020, "eval_data/fan/test/id_01_00000003.wav", ("eval", "fan", "01", None, "test", None, {}, 3)),
])
def test_parse_clip_reads_each_grammar(edition, rel, want):
    c = parse_clip(edition, Path("/data") / rel)
    assert (c.dataset, c.machine, c.section, c.domain, c.split, c.label, dict(c.attributes), c.number) == want
    assert c.edition == edition and c.file == Path(rel).name


@pytest.mark.parametrize("edition, rel, words", [
    (2023, "dev_data/fan/train/section_00_source_train_normal_40_m-n_X.wav", "does not follow"),
    (2023, "dev_data/lathe/train/section_00_source_train_normal_0040_m-n_X.wav", "unknown machine type 'lathe'"),
    (2023, "eval_data/fan/train/section_00_source_train_normal_0040_m-n_X.wav", "not a machine type of the eval set"),
    (2023, "dev_data/fan/train/section_01_source_train_normal_0040_m-n_X.wav", "section 01"),
    (2023, "dev_data/fan/train/section_00_source_train_anomaly_0040_m-n_X.wav", "training folder"),
    (2023, "dev_data/fan/source_test/section_00_source_test_normal_0040_m-n_X.wav", "folder 'source_test'"),
    (2022, "eval_data/fan/test/section_03_source_test_normal_0040_m-n_X.wav", "without a label"),
    (2021, "dev_data/fan/target_test/section_00_source_test_normal_0001.wav", "source-domain clip"),
])
def test_parse_clip_names_the_file_and_the_fault(edition, rel, words):
    with pytest.raises(DatasetLayoutError) as e:
        parse_clip(edition, Path("/data") / rel)
    assert Path(rel).name in str(e.value) and words in str(e.value)


def test_unknown_edition_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown edition 2019"):
        parse_clip(2019, "/data/dev_data/fan/train/x.wav")


def test_parse_attributes():
    assert parse_attributes("car_C2_spd_34V_mic_1") == {"car": "C2", "spd": "34V", "mic": "1"}
    assert parse_attributes("noAttribute") == {} and parse_attributes(None) == {}
    assert parse_attributes("strength_1_ambient") == {"attributes": "strength_1_ambient"}


def _touch(root: Path, rel: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")


def test_index_edition_attributes_csv_and_ground_truth(tmp_path):
    root = tmp_path / "d"
    _touch(root, "dev_data/fan/train/section_00_source_train_normal_0000_m-n_W.wav")
    _touch(root, "dev_data/fan/train/section_00_target_train_normal_0001_m-n_X.wav")
    _touch(root, "eval_data/bandsaw/train/section_00_source_train_normal_0000_vel_1.wav")
    _touch(root, "eval_data/bandsaw/test/section_00_0000.wav")
    _touch(root, "eval_data/bandsaw/test/section_00_0001.wav")
    # the eval test names carry no attributes; the attributes file does
    (root / "dev_data/fan/attributes_00.csv").write_text(
        "file_name,d1p,d1v\nfan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W\n")
    (root / "eval_data/bandsaw/attributes_00.csv").write_text(
        "file_name,d1p,d1v\nbandsaw/test/section_00_0000.wav,vel,3\n")
    gt = tmp_path / "gt"
    (gt / "ground_truth_data").mkdir(parents=True)
    (gt / "ground_truth_domain").mkdir()
    (gt / "ground_truth_data/ground_truth_bandsaw_section_00_test.csv").write_text(
        "section_00_0000.wav,0\nsection_00_0001.wav,1\n")
    (gt / "ground_truth_domain/ground_truth_bandsaw_section_00_test.csv").write_text(
        "section_00_0000.wav,1\nsection_00_0001.wav,0\n")

    unlabelled = index_edition(root, 2023)
    test = unlabelled[unlabelled.split == "test"].set_index("file")
    assert test["label"].isna().all() and test["domain"].isna().all()
    assert test.loc["section_00_0000.wav", "attributes"] == {"vel": "3"}

    df = index_edition(root, 2023, ground_truth=gt)
    assert len(df) == 5
    test = df[df.split == "test"].set_index("file")
    assert test.loc["section_00_0000.wav", ["label", "domain"]].tolist() == ["normal", "target"]
    assert test.loc["section_00_0001.wav", ["label", "domain"]].tolist() == ["anomaly", "source"]
    counts = summarize_edition(df)
    assert counts["n"].sum() == 5 and set(counts["dataset"]) == {"dev", "eval"}

    (root / "dev_data/fan/attributes_00.csv").unlink()
    with pytest.raises(DatasetLayoutError, match=r"fan/attributes_00\.csv: attributes file missing"):
        index_edition(root, 2023)
    assert len(index_edition(root, 2023, attributes_csv=False)) == 5

    _touch(root, "eval_data/bandsaw/test/section_00_0002.wav")
    with pytest.raises(DatasetLayoutError, match=r"section_00_0002\.wav: missing from the ground truth"):
        index_edition(root, 2023, ground_truth=gt, attributes_csv=False)


def test_index_edition_collects_every_bad_name(tmp_path):
    root = tmp_path / "d"
    _touch(root, "dev_data/fan/train/section_00_source_train_normal_0000_m-n_W.wav")
    _touch(root, "dev_data/fan/train/bad_name.wav")
    _touch(root, "dev_data/lathe/train/section_00_source_train_normal_0000_a_1.wav")
    with pytest.raises(DatasetLayoutError) as e:
        index_edition(root, 2023, attributes_csv=False)
    assert "2 problem(s)" in str(e.value) and "bad_name.wav" in str(e.value) and "'lathe'" in str(e.value)


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="shared/data/official-eval absent")
@pytest.mark.parametrize("year, n_files", [(2021, 42), (2023, 7)])
def test_read_official_ground_truth(year, n_files):
    gt = read_eval_ground_truth(OFFICIAL / f"dcase{year}", year)
    assert gt.groupby(["machine", "section"]).ngroups * (2 if year == 2021 else 1) == n_files
    assert set(gt["domain"]) == {"source", "target"} and set(gt["label"]) == {0, 1}
    ed = EDITIONS[year]
    assert set(gt["machine"]) == set(ed.eval_machines)
    for r in gt.head(50).itertuples():
        c = parse_clip(ed, Path("/x/eval_data") / r.machine / ("test" if year != 2021 else f"{r.domain}_test") / r.file)
        assert c.section == r.section and c.label is None


def test_cli_index_per_edition(tmp_path, capsys):
    from asdlib.cli.main import main

    root = tmp_path / "d"
    _touch(root, "dev_data/valve/train/section_00_source_train_normal_0000_pat_00.wav")
    _touch(root, "dev_data/valve/test/section_00_target_test_anomaly_0001_pat_01.wav")
    _touch(root, "dev_data/fan/test/section_00_source_test_normal_0002_m-n_W.wav")
    assert main(["index", "--root", str(root), "--edition", "2023", "--no-attributes-csv"]) == 0
    out = capsys.readouterr().out
    assert "3 DCASE2023 clips (dev: 3)" in out and "target" in out and "anomaly" in out
    assert main(["index", "--root", str(root), "--edition", "2023", "--no-attributes-csv", "--types", "valve",
                 "--parts", "test", "--csv", str(tmp_path / "i.csv")]) == 0
    assert "1 DCASE2023 clips" in capsys.readouterr().out
    assert len((tmp_path / "i.csv").read_text().splitlines()) == 2
    assert main(["index", "--root", str(root), "--edition", "2023"]) == 2  # attributes_00.csv missing
    assert "valve/attributes_00.csv: attributes file missing" in capsys.readouterr().err
    assert main(["index", "--root", str(root), "--edition", "2023", "--no-attributes-csv", "--types", "lathe"]) == 2
    assert main(["index", "--root", str(root), "--edition", "2019"]) == 2
    assert "unknown edition '2019'" in capsys.readouterr().err
    # the default edition keeps the DCASE2020 index: these names are not 2020 names
    assert main(["index", "--root", str(root)]) == 2


@pytest.mark.parametrize("year", sorted(EDITIONS))
def test_clip_name_round_trips_through_the_parser(year):
    from asdlib.data.editions import clip_folder, clip_name

    ed = EDITIONS[year]
    machine = ed.dev_machines[0]
    section = ed.sections(machine, "dev")[0]
    attrs = {} if year == 2020 else {"car": "C2", "spd": "34V"}
    cases = [("train", "source", "normal"), ("test", "source", "anomaly")]
    if year != 2020:
        cases += [("train", "target", "normal"), ("test", "target", "normal")]
    for split, domain, label in cases:
        dom = domain if year != 2020 else None
        name = clip_name(ed, section=section, number=7, split=split, domain=dom, label=label, attributes=attrs)
        c = parse_clip(ed, Path("/r/dev_data") / machine / clip_folder(ed, split, dom) / name)
        assert (c.section, c.domain, c.split, c.label, c.number, dict(c.attributes)) == (
            section, dom, split, label, 7, attrs if not (year == 2021 and split == "test") else {})
    em = ed.eval_machines[0]
    es = ed.sections(em, "eval")[0]
    dom = "target" if year == 2021 else None
    name = clip_name(ed, section=es, number=3, split="test", domain=dom, label=None)
    c = parse_clip(ed, Path("/r/eval_data") / em / clip_folder(ed, "test", dom) / name)
    assert (c.dataset, c.section, c.label, c.domain, c.number) == ("eval", es, None, dom, 3)
