"""Per-edition subset plans (asdlib.data.edition_subset), checked against a local fake Zenodo serving
an archive built from the real DCASE2023 clips of ../shared/data/dcase2023-mini."""
from __future__ import annotations

from pathlib import Path

import pytest
from zenodo_server import FakeZenodo, zip_bytes

from asdlib.cli.main import main
from asdlib.core.errors import DownloadError
from asdlib.data import edition_subset as es
from asdlib.data.edition_subset import (
    EditionSubsetProfile,
    edition_archives,
    edition_clip_bytes,
    edition_subset_figures,
    fetch_edition_subset,
    plan_archive,
)
from asdlib.data.editions import EDITIONS, index_edition, summarize_edition

MINI = Path(__file__).resolve().parents[2] / "shared/data/dcase2023-mini"
needs_mini = pytest.mark.skipif(not (MINI / "dev_data").is_dir(), reason=f"{MINI} absent")
PROFILE = EditionSubsetProfile("test", n_source_train=1, n_target_train=None, n_test=3)
FAST = dict(progress=False, min_interval=0.0, timeout=5.0, tail_bytes=16 << 10)


def test_archives_per_edition():
    files = edition_archives(2023)
    assert len(files) == 21 and {f.record for f in files} == {"7882613", "7830345", "7860847"}
    assert "dev_valve.zip" in {f.filename for f in files}
    assert "eval_data_bandsaw_test.zip" in {f.filename for f in files}
    r2 = [f for f in edition_archives(2024, ["RoboticArm"], ["additional"])]
    assert [f.filename for f in r2] == ["eval_data_RoboticArm_train_r2.zip"] and r2[0].record == "11259435"
    with pytest.raises(Exception, match="unknown machine type 'lathe'"):
        edition_archives(2023, ["lathe"])


def _names(n_src=40, n_tgt=10, n_test=6, prefix="valve"):
    names = [f"{prefix}/train/section_00_source_train_normal_{i:04d}_pat_00.wav" for i in range(n_src)]
    names += [f"{prefix}/train/section_00_target_train_normal_{i:04d}_pat_01.wav" for i in range(n_tgt)]
    for d in ("source", "target"):
        for lab in ("normal", "anomaly"):
            names += [f"{prefix}/test/section_00_{d}_test_{lab}_{i:04d}_pat_02.wav" for i in range(n_test)]
    return names + [f"{prefix}/attributes_00.csv"]


def test_plan_takes_n_source_all_target_and_m_per_domain_label():
    (f,) = edition_archives(2023, ["valve"], ["dev"])
    names = list(reversed(_names()))  # archive order, not name order, decides
    plan = plan_archive(2023, f, names, PROFILE)
    by = {}
    for p in plan.chosen:
        by.setdefault((p.split, p.domain, p.label), []).append(p)
    assert len(by[("train", "source", "normal")]) == 1 and len(by[("train", "target", "normal")]) == 10
    for d in ("source", "target"):
        for lab in ("normal", "anomaly"):
            got = by[("test", d, lab)]
            assert len(got) == 3 and [p.member for p in got] == [n for n in names if f"_{d}_test_{lab}_" in n][:3]
    assert by[("attributes", None, None)][0].relpath == "dev_data/valve/attributes_00.csv"
    assert by[("train", "source", "normal")][0].relpath.startswith("dev_data/valve/train/section_00_source_train")
    assert plan.shortfalls == []
    # a missing group and a short one are reported; a bad name is an error naming the member
    short = plan_archive(2023, f, [n for n in names if "target_train" not in n
                                   and not any(f"source_test_normal_000{i}" in n for i in (2, 3, 4, 5))], PROFILE)
    assert sorted(short.shortfalls) == [
        "dev_valve.zip: valve section 00 test source normal: 2 clip(s), 3 wanted",
        "dev_valve.zip: valve section 00 train target normal: 0 clip(s), all wanted"]
    with pytest.raises(DownloadError, match="valve/test/oops.wav"):
        plan_archive(2023, f, names + ["valve/test/oops.wav"], PROFILE)


def test_plan_eval_test_takes_4m_per_section_and_2021_per_domain():
    (f,) = edition_archives(2023, ["bandsaw"], ["eval"])
    names = [f"bandsaw/test/section_00_{i:04d}.wav" for i in range(200)]
    assert [p.member for p in plan_archive(2023, f, names, PROFILE).chosen] == names[:12]
    (f21,) = edition_archives(2021, ["fan"], ["eval"])
    names = [f"fan/{d}_test/section_0{s}_{d}_test_{i:04d}.wav" for s in (3, 4, 5) for d in ("source", "target")
             for i in range(200)]
    chosen = plan_archive(2021, f21, names, PROFILE).chosen
    assert len(chosen) == 3 * 2 * 6 and {(p.section, p.domain) for p in chosen} == {
        (s, d) for s in ("03", "04", "05") for d in ("source", "target")}


def test_figures_follow_the_table():
    f = edition_subset_figures(2023, "small")
    # dev: 7 x (30 + 10 + 4 x 10); additional: 7 x (30 + 10); eval test: 7 x 40
    assert (f.train_clips, f.test_clips) == (7 * 40 + 7 * 40, 7 * 40 + 7 * 40)
    assert f.clip_bytes == sum(n * edition_clip_bytes(2023, m) for m, n in [
        *((m, 80) for m in EDITIONS[2023].dev_machines), *((m, 80) for m in EDITIONS[2023].eval_machines)])
    # one directory per archive, 6 groups per dev section, 2 per additional, 1 per eval test, 1 per attributes file
    assert f.requests == 21 + 7 * 6 + 7 * 2 + 7 + 14
    f21 = edition_subset_figures(2021, "tiny")
    assert f21.train_clips == 2 * 7 * 3 * (10 + 3)
    assert edition_clip_bytes(2023, "ToyCar") == 44 + 12 * 16000 * 2


def _serve_valve(mini: Path) -> tuple[dict[str, bytes], list[str]]:
    members = []
    for p in sorted((mini / "dev_data/valve").rglob("*.wav")):
        members.append((f"valve/{p.parent.name}/{p.name}", p.read_bytes()))
    rows = ["file_name,d1p,d1v"] + [f"{n},pat,{n.rsplit('_', 1)[-1][:-4]}" for n, _ in members]
    members.append(("valve/attributes_00.csv", ("\n".join(rows) + "\n").encode()))
    return {"dev_valve.zip": zip_bytes(members)}, [n for n, _ in members]


@needs_mini
def test_fetch_a_planned_subset_of_real_clips(tmp_path, capsys, monkeypatch):
    files, _ = _serve_valve(MINI)
    with FakeZenodo(files=files) as server:
        server.records["dev_valve.zip"] = EDITIONS[2023].records.dev
        root = tmp_path / "d"
        results = fetch_edition_subset(root, 2023, PROFILE, ["valve"], ["dev"], server.url, **FAST)
        (r,) = results
        # 1 of the 2 source train clips, no target train clip (none in the mini set), 3 per (domain, label), the csv
        assert r.chosen == 1 + 0 + 4 * 3 + 1 and r.fetched == r.chosen and r.present == 0
        assert r.shortfalls == ["dev_valve.zip: valve section 00 train target normal: 0 clip(s), all wanted"]
        index = index_edition(root, 2023)  # the attributes file came too
        counts = summarize_edition(index).set_index(["split", "domain", "label"])["n"]
        assert counts[("train", "source", "normal")] == 1
        assert all(counts[("test", d, lab)] == 3 for d in ("source", "target") for lab in ("normal", "anomaly"))
        for p in index["path"]:  # the real clips are as large as the figures assume
            assert Path(p).stat().st_size == edition_clip_bytes(2023, "valve")
            assert Path(p).read_bytes() == (MINI / "dev_data/valve" / Path(p).parent.name / Path(p).name).read_bytes()
        # the figures' request estimate bounds what was used (plus Zenodo's redirect hop)
        figures = edition_subset_figures(2023, PROFILE, ["valve"], ["dev"])
        assert r.requests <= figures.requests + 1
        again = fetch_edition_subset(root, 2023, PROFILE, ["valve"], ["dev"], server.url, **FAST)
        assert again[0].fetched == 0 and again[0].present == r.chosen
        monkeypatch.setitem(es.EDITION_PROFILES, "test", PROFILE)
        monkeypatch.setattr(es, "fetch_edition_subset",
                            lambda *a, **k: fetch_edition_subset(*a, **{**k, "min_interval": 0.0}))
        root2 = tmp_path / "cli"
        assert main(["download", "--edition", "2023", "--subset", "test", "--root", str(root2), "--types", "valve",
                     "--parts", "dev", "--base-url", server.url, "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "dev_valve.zip: 14 members chosen, 14 fetched" in out and "DCASE2023 subset 'test'" in out
        assert len(list(root2.rglob("*.wav"))) == 13


def test_readme_subset_table_is_the_computed_figures():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for year in (2021, 2022, 2023, 2024, 2025):
        s, t = edition_subset_figures(year, "small"), edition_subset_figures(year, "tiny")
        row = (f"| {year} | {s.archives} | {s.clips:,} clips, {s.clip_bytes:,} B ({s.clip_bytes / 1e9:.2f} GB), "
               f"about {s.requests} requests | {t.clips:,} clips, {t.clip_bytes:,} B ({t.clip_bytes / 1e9:.2f} GB), "
               f"about {t.requests} requests |")
        assert row in readme, row
