"""``asdlib download --subset``: chosen clips out of the Zenodo zips by range requests, against a local fake Zenodo.

The archives are built by ``tests/zenodo_server.py`` in the official naming and layout: short
synthetic clips in every test, and the real clips of ``../shared/data/dcase2020-{mini,extra}``
in :func:`test_real_audio_subset` (skipped only when that folder is absent).
"""
from __future__ import annotations

import functools
import json
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from zenodo_server import FakeZenodo, build_fake_zenodo, real_data_available, synth_clip, zip_bytes

from asdlib.cli.main import main
from asdlib.core.errors import DownloadError
from asdlib.core.machines import MACHINE_TYPES
from asdlib.data import subset as subset_mod
from asdlib.data.index import index_dataset, read_ground_truth
from asdlib.data.remote_zip import Member, RangeClient, RangeNotSupported, coalesce, retry_after_seconds
from asdlib.data.subset import (
    MANIFEST_FILE,
    PROFILES,
    SubsetProfile,
    clip_bytes,
    fetch_subset,
    read_manifest,
    subset_figures,
)

TYPES = ("fan", "ToyCar")
PROFILE = SubsetProfile("test", n_train=3, n_test=1, n_eval_test=2)
FAST = dict(progress=False, min_interval=0.0, backoff=0.01, timeout=5.0, tail_bytes=16 << 10)


@pytest.fixture(scope="module")
def fake():
    # per ID: 6 training clips, 3 normal + 3 anomalous test clips (dev and eval); name order, stored/deflated
    return build_fake_zenodo(TYPES, n_train=6, n_test=3, n_eval_test=3)


@pytest.fixture
def server(fake):
    with FakeZenodo(fake) as srv:
        yield srv


def expected_selection(fake, profile: SubsetProfile) -> set[str]:
    """What the profile must choose (first clips per (ID, part, label) in archive order), computed apart."""
    out: set[str] = set()
    for a in fake.archives.values():
        taken: Counter = Counter()
        for s in a.spans:
            t, part, name = s.name.split("/")
            if a.file.part == "eval":
                mid, label, quota = name[3:5], fake.truth[(t, name)], profile.eval_test
            else:
                mid, label = name.split("_id_")[1][:2], int(name.startswith("anomaly"))
                quota = profile.n_train if part == "train" else profile.n_test
            if taken[(mid, part, label)] < quota:
                taken[(mid, part, label)] += 1
                out.add(f"{a.file.dataset_dir}/{s.name}")
    return out


def runs(fake, filename: str, relpaths: set[str]) -> int:
    """Runs of adjacent chosen members in an archive: the requests needed with max_gap=0."""
    a = fake.archives[filename]
    chosen = [s for s in a.spans if f"{a.file.dataset_dir}/{s.name}" in relpaths]
    return sum(1 for k, s in enumerate(chosen) if k == 0 or chosen[k - 1].end != s.start)


def wavs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.wav")}


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".part")]


# ---- figures and pure helpers -------------------------------------------------------------------------------


def test_default_profile_figures():
    assert clip_bytes("fan") == 320_044 and clip_bytes("ToyCar") == 352_044
    small = subset_figures("small")
    assert (small.train_clips, small.dev_test_clips, small.eval_test_clips, small.clips) == (1230, 460, 360, 2050)
    assert small.clip_bytes == 7 * 50 * 352_044 + 34 * 50 * 320_044 == 667_290_200
    assert small.total_bytes < 1e9  # the brief: at most about 1 GB
    # 18 directory reads + 23 dev IDs x 3 runs + 18 eval IDs x 2 runs + the ground truth
    assert (small.archives, small.requests, small.requests_worst) == (18, 124, 2069)
    assert "2,050 clips" in small.describe()
    tiny = subset_figures("tiny", ["fan"], ["dev"])
    assert (tiny.clips, tiny.requests) == (4 * 18, 1 + 12)
    assert set(PROFILES) >= {"small", "tiny"}


def test_coalesce_and_retry_after():
    import zipfile

    def m(start, end):
        return Member(zipfile.ZipInfo(f"m{start}"), start, end)

    ms = [m(0, 10), m(10, 20), m(25, 30), m(100, 110), m(110, 300)]
    assert [[x.start for x in g] for g in coalesce(ms, max_gap=0, max_request=1000)] == [[0, 10], [25], [100, 110]]
    assert [[x.start for x in g] for g in coalesce(ms, max_gap=5, max_request=1000)] == [[0, 10, 25], [100, 110]]
    assert [[x.start for x in g] for g in coalesce(ms[::-1], max_gap=100, max_request=150)] == [[0, 10, 25, 100], [110]]
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait


# ---- the whole path --------------------------------------------------------------------------------------------


def test_subset_end_to_end(server, fake, tmp_path):
    root = tmp_path / "data"
    result = fetch_subset(root, PROFILE, TYPES, base_url=server.url, max_gap=0, **FAST)
    want = expected_selection(fake, PROFILE)
    assert wavs(root) == want and result.fetched == len(want) == 2 * (4 * 5 + 3 * 3 + 3 * 4)  # fan, ToyCar: 4 dev, 3 eval IDs
    for rel in want:
        assert (root / rel).read_bytes() == fake.clips[rel]
    assert not temps(root) and not result.shortfalls

    # requests: one redirect (the target is reused), one directory read, one per run of adjacent chosen members
    for name in fake.archives:
        kinds = Counter(e.kind for e in server.requests_for(name))
        assert kinds == {"redirect": 1, "directory": 1, "members": runs(fake, name, want)}, name
    assert result.requests == len(server.log)  # every request the server saw, redirect hops included
    assert runs(fake, "dev_data_fan.zip", want) == 4 * 3  # a train run per ID, a normal and an anomalous test run
    assert Counter(e.kind for e in server.requests_for("eval_data_list.csv")) == {"redirect": 1, "whole": 1}

    # the manifest: source of every clip, the archives, the profile, the ground truth
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert set(manifest["members"]) == want
    for rel, rec in manifest["members"].items():
        a = fake.archives[rec["archive"]]
        assert rec["record"] == a.file.record and f"{a.file.dataset_dir}/{rec['member']}" == rel
        assert rec["crc32"] == f"{zlib.crc32(fake.clips[rel]):08x}" and rec["size"] == len(fake.clips[rel])
        assert rec["compression"] in ("stored", "deflated")
    assert {r["compression"] for r in manifest["members"].values()} == {"stored", "deflated"}
    assert all(a["complete"] and a["size"] == len(fake.archives[n].data) for n, a in manifest["archives"].items())
    assert manifest["profile"]["n_train"] == 3 and manifest["ground_truth"]["record"] == "3951620"
    assert (root / "eval_data_list.csv").read_bytes() == fake.truth_csv

    # usable: the index reads it (eval test labels from the ground truth), the feature cache builds
    df = index_dataset(root)
    assert len(df) == len(want)
    eval_test = df[(df.dataset == "eval") & (df.part == "test")]
    assert (eval_test.groupby(["machine_type", "machine_id", "label"]).size() == 2).all() and len(eval_test) == 2 * 3 * 4
    from asdlib.features.cache import build_feature_cache
    from asdlib.features.logmel import FeatureConfig

    # the fake archives hold 0.25-s clips, not DCASE2020's 10 s: the length is given explicitly
    store = build_feature_cache(df, FeatureConfig(duration_s=0.25), cache_dir=tmp_path / "features", device="cpu",
                                num_workers=1, progress=False)
    assert store.features.shape[0] == len(df) and np.isfinite(np.asarray(store.features, dtype=np.float32)).all()

    # a rerun: everything verified on disk, not one request
    server.reset_log()
    again = fetch_subset(root, PROFILE, TYPES, base_url=server.url, **FAST)
    assert server.log == [] and again.requests == 0 and again.fetched == 0
    assert {a.status for a in again.archives} == {"verified"}


def test_adjacent_members_come_in_one_request(server, fake, tmp_path):
    root = tmp_path / "data"
    fetch_subset(root, PROFILE, TYPES, parts=("dev", "additional"), base_url=server.url, **FAST)  # max_gap 1 MiB
    for name, chosen in (("dev_data_fan.zip", 20), ("dev_data_ToyCar.zip", 20), ("eval_data_train_fan.zip", 9)):
        members = server.requests_for(name, "members")
        assert len(members) == 1 and len(members[0].members) > chosen  # the unwanted members between came along
    # a directory larger than the first read costs exactly one more request
    server.reset_log()
    fetch_subset(tmp_path / "other", PROFILE, ["fan"], parts=("dev",), base_url=server.url, **(FAST | {"tail_bytes": 256}))
    assert Counter(e.kind for e in server.requests_for("dev_data_fan.zip")) == {"redirect": 1, "directory": 2, "members": 1}


def test_cli_subset(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(PROFILES, "test", PROFILE)
    monkeypatch.setattr(subset_mod, "fetch_subset", functools.partial(fetch_subset, min_interval=0.0, backoff=0.01))
    root = tmp_path / "data"
    assert main(["download", "--subset", "test", "--root", str(root), "--types", "fan", "--parts", "dev,truth",
                 "--base-url", server.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fetched   dev_data_fan.zip: 20 clips chosen, 20 fetched" in out and "ground truth: fetched" in out
    assert len(wavs(root)) == 20 and (root / "eval_data_list.csv").is_file()
    assert main(["download", "--subset", "small", "--root", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2,050 clips" in out and "667,290,200 bytes" in out
    assert main(["download", "--subset", "nope", "--root", str(root)]) != 0


# ---- a server that misbehaves -------------------------------------------------------------------------------------


def test_server_ignoring_range_is_refused(fake, tmp_path):
    big = fake.archives["dev_data_fan.zip"].data + bytes(48 << 20)  # an archive far too big to fetch by accident
    with FakeZenodo(fake) as srv:
        srv.files["dev_data_fan.zip"] = big
        srv.ignore_range = True
        root = tmp_path / "data"
        with pytest.raises(RangeNotSupported, match=r"ignored the Range request.*206 Partial Content.*nothing was written"):
            fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=srv.url, **FAST)
        srv.wait_idle()
        whole = srv.requests_for("dev_data_fan.zip", "whole")
        assert len(whole) == 1 and len(srv.requests_for("dev_data_fan.zip")) == 2  # the redirect, then no retry
        assert whole[0].sent < len(big) // 4  # the connection was closed at once
    assert not wavs(root) and not temps(root)


def test_rate_limit_is_honoured_and_scattered_members_cost_more_requests(tmp_path):
    # an archive written in shuffled order, clips chosen by name: chosen members lie apart
    fake = build_fake_zenodo(["fan"], n_train=20, n_test=6, order="shuffled", parts=("dev",), seed=3)
    by_name = SubsetProfile("by-name", n_train=3, n_test=1, order="name")
    with FakeZenodo(fake) as srv:
        srv.rate_limit = (6, 1.0, "1")  # 6 requests a second, then 429 with Retry-After: 1
        root = tmp_path / "name"
        result = fetch_subset(root, by_name, ["fan"], parts=("dev",), base_url=srv.url, max_gap=0, **FAST)
        chosen = wavs(root)
        assert len(chosen) == 20 and result.fetched == 20
        assert all(n.endswith(("_00000000.wav", "_00000001.wav", "_00000002.wav")) for n in chosen)
        n_runs = runs(fake, "dev_data_fan.zip", chosen)
        assert 12 < n_runs <= 20  # more than the 12 runs of a name-ordered archive, at most one per clip
        assert len(srv.requests_for("dev_data_fan.zip", "members")) == n_runs
        log = srv.log
        limited = [k for k, e in enumerate(log) if e.kind == "limited"]
        assert limited and result.waited_s >= 1.0
        for k in limited:  # the client waited Retry-After before asking again
            assert k + 1 < len(log) and log[k + 1].t - log[k].t >= 0.95
        # chosen in archive order, the same archive needs fewer requests
        srv.rate_limit = None
        srv.reset_log()
        fetch_subset(tmp_path / "archive", PROFILE, ["fan"], parts=("dev",), base_url=srv.url, max_gap=0, **FAST)
        assert len(srv.requests_for("dev_data_fan.zip", "members")) < n_runs


def test_busy_server_is_waited_for_within_bounds(server, tmp_path):
    # 503 with and without Retry-After, then served: the run finishes
    server.fail["dev_data_fan.zip"] = [(503, "0"), (503, None), (429, "0")]
    result = fetch_subset(tmp_path / "a", PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert result.fetched == 20 and len(server.requests_for("dev_data_fan.zip", "limited")) == 3
    # a server that asks for a longer wait than allowed, or stays busy: a clear error, no endless loop
    server.fail["dev_data_fan.zip"] = [(429, "3600")]
    with pytest.raises(DownloadError, match=r"asks to wait 3600 s \(Retry-After\).*run the command again later"):
        fetch_subset(tmp_path / "b", PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    server.fail["dev_data_fan.zip"] = [(503, None)] * 10
    with pytest.raises(DownloadError, match=r"HTTP 503 .*after 3 attempt\(s\)"):
        fetch_subset(tmp_path / "c", PROFILE, ["fan"], parts=("dev",), base_url=server.url, **(FAST | {"retries": 2}))
    assert len(server.fail["dev_data_fan.zip"]) == 7
    assert not wavs(tmp_path / "b") and not wavs(tmp_path / "c")


def test_expired_redirect_target_is_resolved_again(server, tmp_path):
    # the remembered redirect target answers 410 once (a signed URL that expired): back to the record URL
    server.fail["dev_data_fan.zip"] = [None, None, (410, None)]
    result = fetch_subset(tmp_path, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert result.fetched == 20
    assert [e.kind for e in server.requests_for("dev_data_fan.zip")] == ["redirect", "directory", "error", "redirect",
                                                                        "members"]


def test_dropped_connection_is_retried(server, fake, tmp_path):
    spans = fake.archives["dev_data_fan.zip"].spans
    cut = spans[4].start + 100  # four members and a bit, then the connection drops
    server.drop["dev_data_fan.zip"] = [cut]
    root = tmp_path / "data"
    result = fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert result.fetched == 20 and not temps(root)
    first, second = server.requests_for("dev_data_fan.zip", "members")
    assert first.sent == cut and set(first.members) == {s.name for s in spans[:4]}
    chosen = [s for s in spans if f"dev_data/{s.name}" in expected_selection(fake, PROFILE)]
    assert second.span[0] == next(s.start for s in chosen if s.data_end > cut)  # resumed at the first one missing
    for rel in wavs(root):
        assert (root / rel).read_bytes() == fake.clips[rel]


def test_cut_run_resumes_without_refetching(server, fake, tmp_path, monkeypatch):
    root = tmp_path / "data"
    # a connection that keeps dropping, no retries: the run stops with what it verified kept
    spans = fake.archives["dev_data_fan.zip"].spans
    server.drop["dev_data_fan.zip"] = [spans[7].start + 10, 0]  # the retry is cut before any member arrives
    with pytest.raises(DownloadError, match="run the command again to resume"):
        fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **(FAST | {"retries": 0}))
    after_cut = wavs(root)
    assert after_cut and not temps(root)
    assert set(read_manifest(root)["members"]) == after_cut  # recorded although the run failed
    for rel in after_cut:
        assert (root / rel).read_bytes() == fake.clips[rel]

    # then a kill (Ctrl-C) in the middle of writing a clip: no half-written file
    calls = {"n": 0}
    real_check = subset_mod.check_clip

    def interrupted(path, where):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real_check(path, where)

    monkeypatch.setattr(subset_mod, "check_clip", interrupted)
    server.reset_log()
    with pytest.raises(KeyboardInterrupt):
        fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    after_kill = wavs(root)
    assert len(after_kill) == len(after_cut) + 3 and not temps(root)
    carried = {m for e in server.requests_for("dev_data_fan.zip", "members") for m in e.members}
    assert not {f"dev_data/{m}" for m in carried} & after_cut  # nothing verified was fetched again
    monkeypatch.setattr(subset_mod, "check_clip", real_check)

    # the resumed run fetches only what is missing, and finishes
    server.reset_log()
    result = fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert result.archives[0].present == len(after_kill) and result.fetched == 20 - len(after_kill)
    carried = {f"dev_data/{m}" for e in server.requests_for("dev_data_fan.zip", "members") for m in e.members}
    assert not carried & after_kill
    assert wavs(root) == {r for r in expected_selection(fake, PROFILE) if r.startswith("dev_data/fan/")}
    assert set(read_manifest(root)["members"]) == wavs(root)


@pytest.mark.parametrize("member", ["fan/test/anomaly_id_00_00000000.wav", "fan/test/anomaly_id_00_00000001.wav"])
def test_corrupt_member_is_discarded_and_fetched_again(server, fake, tmp_path, member):
    # the two members: one stored, one deflated (the archive alternates)
    info = {s.name: s for s in fake.archives["dev_data_fan.zip"].spans}[member]
    server.corrupt[("dev_data_fan.zip", member)] = 1
    root = tmp_path / "data"
    prof = SubsetProfile("two-tests", n_train=0, n_test=2)
    result = fetch_subset(root, prof, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert result.fetched == 16 and (root / "dev_data" / member).read_bytes() == fake.clips[f"dev_data/{member}"]
    carrying = [e for e in server.requests_for("dev_data_fan.zip", "members") if member in e.members]
    assert len(carrying) == 2 and carrying[1].span[0] == info.start  # refetched alone, after the first pass

    # a member that stays corrupt: a clear error, the damaged bytes never land on disk
    server.corrupt[("dev_data_fan.zip", member)] = 100
    root2 = tmp_path / "again"
    with pytest.raises(DownloadError, match=rf"{member} failed its check 3 times"):
        fetch_subset(root2, prof, ["fan"], parts=("dev",), base_url=server.url, **FAST)
    assert not (root2 / "dev_data" / member).exists() and not temps(root2)
    assert len(wavs(root2)) == 15


def test_member_with_right_crc_but_wrong_format_is_refused(tmp_path):
    members = [(f"fan/train/normal_id_00_{k:08d}.wav", synth_clip(k)) for k in range(2)]
    members.append(("fan/train/normal_id_02_00000000.wav", synth_clip(9, subtype="PCM_24")))
    with FakeZenodo(files={"dev_data_fan.zip": zip_bytes(members)}) as srv:
        with pytest.raises(DownloadError, match=r"normal_id_02_00000000.wav: the CRC-32 is right but .*PCM_24"):
            fetch_subset(tmp_path, SubsetProfile("p", n_train=1, n_test=0), ["fan"], parts=("dev",),
                         base_url=srv.url, **FAST)
    assert wavs(tmp_path) == {"dev_data/fan/train/normal_id_00_00000000.wav"} and not temps(tmp_path)


# ---- real audio -----------------------------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.skipif(not real_data_available(), reason="../shared/data/dcase2020-{mini,extra} absent")
def test_real_audio_subset(tmp_path):
    fake = build_fake_zenodo(MACHINE_TYPES, n_train=6, n_test=3, real=True, seconds=0.5, parts=("dev",))
    prof = SubsetProfile("real", n_train=5, n_test=2)
    root = tmp_path / "data"
    with FakeZenodo(fake) as srv:
        result = fetch_subset(root, prof, MACHINE_TYPES, parts=("dev", "truth"), base_url=srv.url, **FAST)
        assert all(len(srv.requests_for(n, "members")) <= 2 for n in fake.archives)  # slider: 70 unwanted clips between
    got = wavs(root)
    assert result.fetched == len(got) == 23 * (5 + 4) and not result.shortfalls
    real = got & fake.real
    # all 75 slider id_00 training clips are real: the 5 chosen are; the dev test clips are real but
    # pump id_02's anomalies (the shared data has none)
    assert {r for r in real if "/train/" in r} == {f"dev_data/slider/train/normal_id_00_{k:08d}.wav" for k in range(5)}
    assert len(real) == 5 + 22 * 4 + 2
    src = {p.relative_to(p.parents[3]).as_posix(): p for d in ("dcase2020-mini", "dcase2020-extra")
           for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / d).rglob("*.wav")}
    for rel in real:
        assert (root / rel).read_bytes() == src[rel].read_bytes()

    df = index_dataset(root)
    assert len(df) == len(got) and read_ground_truth(root / "eval_data_list.csv")
    real_df = df[df.relpath.isin(real)].reset_index(drop=True)
    from asdlib.features.cache import build_feature_cache

    store = build_feature_cache(real_df, cache_dir=tmp_path / "features", device="cpu", num_workers=1, progress=False)
    assert store.features.shape == (len(real_df), 128, 313)  # 10-s clips (ToyCar's 11 s cropped to 10 s)
    assert np.isfinite(np.asarray(store.features, dtype=np.float32)).all()


# ---- issue 17: one client, bounded inflation, one fetch per root, one profile per root ------------------------------


def test_retries_are_one_budget_not_nested(server, fake, tmp_path):
    # a cut member request, then a busy server: the cut and the 503s share the 2 retries (3 attempts in all);
    # nested retries made 1 + 3 member requests
    spans = fake.archives["dev_data_fan.zip"].spans
    server.drop["dev_data_fan.zip"] = [spans[0].start + 10]  # cut before the first member is whole
    server.fail["dev_data_fan.zip"] = [None, None, None] + [(503, None)] * 10  # redirect, directory, cut members
    client = RangeClient(timeout=5.0, retries=2, min_interval=0.0, backoff=0.01)
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\)"):
        fetch_subset(tmp_path, PROFILE, ["fan"], parts=("dev",), base_url=server.url, client=client, progress=False,
                     tail_bytes=16 << 10)
    assert client.requests == len(server.log) == 5  # retries inside urllib3 counted too
    kinds = Counter(e.kind for e in server.requests_for("dev_data_fan.zip"))
    assert kinds == {"redirect": 1, "directory": 1, "members": 1, "limited": 2}
    assert not wavs(tmp_path) and not temps(tmp_path)


def test_negative_retries_are_refused(server, tmp_path, monkeypatch, capsys):
    from asdlib.core.errors import ConfigError

    with pytest.raises(ConfigError, match="retries must be a whole number, 0 or more"):
        fetch_subset(tmp_path, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **(FAST | {"retries": -1}))
    monkeypatch.setitem(PROFILES, "test", PROFILE)
    with pytest.raises(SystemExit) as e:
        main(["download", "--subset", "test", "--root", str(tmp_path), "--types", "fan", "--parts", "dev",
              "--base-url", server.url, "--no-progress", "--retries", "-1"])
    assert e.value.code == 2 and "--retries: must be a whole number, 0 or more" in capsys.readouterr().err
    assert server.log == [] and not wavs(tmp_path)


def _patch_sizes(data: bytes, name: str, size: int) -> bytes:
    """The zip with ``name``'s uncompressed size set to ``size`` in its local header and its directory entry."""
    import io
    import zipfile

    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    out[info.header_offset + 22:info.header_offset + 26] = size.to_bytes(4, "little")
    entry = data.index(b"PK\x01\x02")  # the first directory entry (the clips are PCM: no such bytes there)
    while True:
        n = int.from_bytes(out[entry + 28:entry + 30], "little")
        if bytes(out[entry + 46:entry + 46 + n]) == name.encode():
            out[entry + 24:entry + 28] = size.to_bytes(4, "little")
            return bytes(out)
        m, k = int.from_bytes(out[entry + 30:entry + 32], "little"), int.from_bytes(out[entry + 32:entry + 34], "little")
        entry += 46 + n + m + k


def test_a_member_that_inflates_past_its_stated_size_is_refused_early(tmp_path):
    import io
    import tracemalloc
    import zipfile

    name = "fan/train/normal_id_00_00000000.wav"
    bomb = bytes(32 << 20)  # 32 MiB of zeros deflate to about 150 KB; the directory will say 10 bytes
    buf = zip_bytes([(name, bomb)], compression="deflated")
    data = _patch_sizes(buf, name, 10)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo(name).file_size == 10 and zf.getinfo(name).compress_size < 200_000
    with FakeZenodo(files={"dev_data_fan.zip": data}) as srv:
        tracemalloc.start()
        try:
            with pytest.raises(DownloadError, match=r"inflates to more than the 10 bytes its directory entry states"):
                fetch_subset(tmp_path, SubsetProfile("p", n_train=1, n_test=0), ["fan"], parts=("dev",),
                             base_url=srv.url, **FAST)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated while reading a 10-byte member"
    assert not wavs(tmp_path) and not temps(tmp_path)


def test_a_member_read_outside_its_span_is_refused(tmp_path):
    import io
    import zipfile

    from asdlib.data.remote_zip import RemoteZip

    # A, B, C; A and B hold the same bytes. A's local header claims an extra field that puts A's data
    # exactly where B's data lies: A would "verify" with bytes that belong to B.
    clip = synth_clip(1, seconds=0.01)
    names = [f"fan/train/normal_id_00_{k:08d}.wav" for k in range(3)]
    data = bytearray(zip_bytes([(names[0], clip), (names[1], clip), (names[2], synth_clip(2, seconds=0.01))],
                               compression="stored"))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        a, b = zf.getinfo(names[0]).header_offset, zf.getinfo(names[1]).header_offset
    extra_b = int.from_bytes(data[b + 28:b + 30], "little")
    data[a + 28:a + 30] = (b - a + extra_b).to_bytes(2, "little")
    with FakeZenodo(files={"dev_data_fan.zip": bytes(data)}) as srv, \
            RangeClient(timeout=5.0, retries=1, min_interval=0.0, backoff=0.01) as client:
        rz = RemoteZip(client, f"{srv.url}/3678171/files/dev_data_fan.zip?download=1", 16 << 10)
        with pytest.raises(DownloadError, match=r"normal_id_00_00000000.wav failed its check .*past the .*span"):
            list(rz.fetch([rz.members[names[0]], rz.members[names[2]]], max_gap=1 << 20))


def test_a_trickling_answer_is_cut_at_the_request_deadline(server, tmp_path):
    import time

    server.trickle["dev_data_fan.zip"] = 0.05  # 20 KiB a second: the member request would take about 10 s
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"more than the 0.5-s deadline of a request"):
        fetch_subset(tmp_path, PROFILE, ["fan"], parts=("dev",), base_url=server.url,
                     **(FAST | {"retries": 0, "deadline": 0.5}))
    assert time.monotonic() - t0 < 4
    server.trickle.clear()


def test_a_second_fetch_into_the_same_root_stops_with_a_message(server, tmp_path):
    import subprocess
    import sys

    from asdlib.data.download import download
    from asdlib.data.lock import LOCK_FILE

    root = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from asdlib.data.lock import root_lock\n"
         f"with root_lock({str(root)!r}, 'asdlib download --subset small'):\n"
         "    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = re.escape(str(root / LOCK_FILE))
        with pytest.raises(DownloadError, match=rf"being filled by process {holder.pid} .*holds the lock {lock}"):
            fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)
        with pytest.raises(DownloadError, match=rf"process {holder.pid} "):
            download(root, files=[], base_url=server.url, progress=False)
        assert server.log == []
    finally:
        holder.communicate("", timeout=10)
    result = fetch_subset(root, PROFILE, ["fan"], parts=("dev",), base_url=server.url, **FAST)  # released
    assert result.fetched == 20


def test_a_profile_change_leaves_only_the_new_profile(server, fake, tmp_path):
    root = tmp_path / "data"
    fetch_subset(root, PROFILE, TYPES, base_url=server.url, **FAST)
    assert wavs(root) == expected_selection(fake, PROFILE)
    smaller = SubsetProfile("smaller", n_train=1, n_test=1, n_eval_test=1)
    server.reset_log()
    result = fetch_subset(root, smaller, ["fan"], base_url=server.url, **FAST)
    want = {r for r in expected_selection(fake, smaller) if "/fan/" in r}
    assert wavs(root) == want  # fan's extra clips and every ToyCar clip of the other profile are gone
    assert result.removed == len(expected_selection(fake, PROFILE)) - len(want)
    manifest = read_manifest(root)
    assert set(manifest["members"]) == want and all("fan" in a for a in manifest["archives"])
    assert len(index_dataset(root)) == len(want)
    # the same profile, another type: the first type's clips stay
    fetch_subset(root, smaller, ["ToyCar"], base_url=server.url, **FAST)
    assert wavs(root) == expected_selection(fake, smaller)
    # back to the first profile: its clips are fetched again, nothing of the other stays
    fetch_subset(root, PROFILE, TYPES, base_url=server.url, **FAST)
    assert wavs(root) == expected_selection(fake, PROFILE) == set(read_manifest(root)["members"])
