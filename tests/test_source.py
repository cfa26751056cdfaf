"""The main job's data source: real subset when Zenodo answers, synthetic otherwise, and saying which."""
from __future__ import annotations

import http.server
import socket
import threading
import time
from dataclasses import replace

import pytest

from asdlib.core.errors import ConfigError
from asdlib.study.pipeline import DATA_NOTE_START, ReproduceConfig, data_note, write_data_note
from asdlib.study.source import choose_data


class _Head(http.server.BaseHTTPRequestHandler):
    """Answers any file with 200; ``/record/...`` redirects to ``/portal`` (a login page) when ``portal`` is set."""

    portal = False

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        if self.portal and self.path.startswith("/record/"):
            self.send_response(302)
            self.send_header("Location", "/portal?next=x")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        html = self.path.startswith("/portal")
        body = b"<html>sign in</html>" if html else b"f"
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if html else "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def head_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Head)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/record"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_forced_choices_do_not_probe(monkeypatch, tmp_path):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    assert choose_data("synthetic").kind == "synthetic"
    real = choose_data("real", subset_root=tmp_path / "subset")
    assert real.kind == "real" and real.root == str((tmp_path / "subset").resolve())
    monkeypatch.setenv("ASDLIB_DATA", "synthetic")
    assert choose_data(None).kind == "synthetic"
    with pytest.raises(ConfigError, match="data source"):
        choose_data("zenodo")


def test_auto_uses_real_data_when_the_server_answers(head_server, monkeypatch, tmp_path):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    choice = choose_data("auto", base_url=head_server, subset_root=tmp_path / "subset")
    assert choice.kind == "real" and "reachable" in choice.reason


def test_auto_falls_back_to_synthetic_within_seconds(monkeypatch, tmp_path):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    t0 = time.perf_counter()
    choice = choose_data("auto", base_url=f"http://127.0.0.1:{_closed_port()}/record", timeout=2.0,
                         subset_root=tmp_path / "subset")
    assert choice.kind == "synthetic" and "not reachable" in choice.reason
    assert time.perf_counter() - t0 < 5


def test_results_readme_says_which_data_and_why(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# results/\n\nHand-written description.\n")
    cfg = ReproduceConfig(profile="smoke", data_note="Zenodo not reachable: no network", work_dir=str(tmp_path))
    write_data_note(readme, data_note(cfg, "/x", synthetic=True))
    write_data_note(readme, data_note(cfg, "/x", synthetic=True))  # a second run replaces, not appends
    text = readme.read_text()
    assert text.count(DATA_NOTE_START) == 1 and "synthetic" in text and "no network" in text
    assert "Hand-written description." in text
    cfg = ReproduceConfig(profile="real", data_note="Zenodo reachable", work_dir=str(tmp_path))
    write_data_note(readme, data_note(cfg, "/data/subset", synthetic=False))
    text = readme.read_text()
    assert "real DCASE2020" in text and "synthetic" not in text.split("Hand-written")[0]


def test_real_profile_needs_a_data_root(tmp_path):
    from asdlib.study.context import Study

    with pytest.raises(ConfigError, match="data_root"):
        Study.open(profile="real", results_dir=str(tmp_path / "r"), work_dir=str(tmp_path / "w"))


# ---- issue 17.6: a subset on disk, a probe that counts only the file, a fallback when the fetch fails ----------------


def test_probe_counts_only_a_2xx_answer_for_the_file(head_server, monkeypatch, tmp_path):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    monkeypatch.setattr(_Head, "portal", True)  # a captive portal: every URL redirects to a login page (200)
    choice = choose_data("auto", base_url=head_server, subset_root=tmp_path / "subset")
    assert choice.kind == "synthetic" and "not the file eval_data_list.csv" in choice.reason
    assert "/portal" in choice.reason


@pytest.fixture
def small_as(monkeypatch):
    """A tiny profile stands in for the ``small`` subset; fetches do not pause between requests."""
    import functools

    from asdlib.data import subset as subset_mod
    from asdlib.study import source

    prof = subset_mod.SubsetProfile("test-small", n_train=1, n_test=1, n_eval_test=1)
    monkeypatch.setitem(subset_mod.PROFILES, prof.name, prof)
    monkeypatch.setattr(source, "DCASE2020", replace(source.DCASE2020, profile=prof.name))
    monkeypatch.setattr(subset_mod, "fetch_subset", functools.partial(
        subset_mod.fetch_subset, min_interval=0.0, backoff=0.01, timeout=5.0, tail_bytes=16 << 10, progress=False))
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    return prof


def test_auto_uses_a_verified_subset_on_disk_without_the_network(small_as, tmp_path):
    from zenodo_server import FakeZenodo, build_fake_zenodo

    from asdlib.core.machines import MACHINE_TYPES
    from asdlib.data.subset import fetch_subset
    from asdlib.study.source import settle_data

    root = tmp_path / "subset"
    with FakeZenodo(build_fake_zenodo(MACHINE_TYPES, n_train=1, n_test=1, n_eval_test=1)) as srv:
        fetch_subset(root, small_as.name, base_url=srv.url)
    offline = f"http://127.0.0.1:{_closed_port()}/record"  # nothing answers there
    choice = choose_data("auto", base_url=offline, subset_root=root)
    assert choice.kind == "real" and "on disk (subset)" in choice.reason and "not asked" in choice.reason
    assert str(tmp_path) not in choice.reason  # no absolute path of this machine in what the results show
    settled = settle_data(choice, base_url=offline, progress=False)  # verified on disk: no request needed
    assert settled.kind == "real" and settled.root == str(root.resolve())
    # a clip missing: the subset is not complete, so the probe decides (and fails here)
    next(root.glob("dev_data/fan/train/*.wav")).unlink()
    assert choose_data("auto", base_url=offline, subset_root=root, timeout=2.0).kind == "synthetic"


@pytest.mark.parametrize("trouble", ["no-range", "rate-limit"])
def test_a_failed_fetch_after_the_probe_falls_back_to_synthetic(small_as, tmp_path, monkeypatch, capsys, trouble):
    from zenodo_server import FakeZenodo, build_fake_zenodo

    from asdlib.cli.main import main
    from asdlib.core.errors import DownloadError
    from asdlib.data.zenodo import select_files
    from asdlib.study import pipeline, source

    first = select_files(None, ("dev",))[0]  # the first archive the subset reads
    ran = []
    monkeypatch.setattr(pipeline, "reproduce", lambda cfg: ran.append(cfg) or [])
    monkeypatch.setattr(source, "DCASE2020", replace(source.DCASE2020, root=str(tmp_path / "subset")))
    with FakeZenodo(build_fake_zenodo([first.machine_type], n_train=1, n_test=1, parts=("dev",))) as srv:
        monkeypatch.setenv("ASDLIB_ZENODO_URL", srv.url)
        if trouble == "no-range":
            srv.ignore_range = True  # the probe's file comes whole (2xx); the archives cannot be read in parts
        else:
            srv.fail[first.filename] = [(429, "3600")]  # a rate limit past the client's patience
        assert main(["reproduce", "--data", "auto", "--results-dir", str(tmp_path / "results")]) == 0
        out = capsys.readouterr().out
        assert "data: real (Zenodo reachable" in out and "the real subset could not be fetched" in out
        assert ran and ran[0].data_root is None and ran[0].profile == "smoke"
        why = "ignored the Range request" if trouble == "no-range" else "asks to wait 3600 s"
        assert why in ran[0].data_note and "synthetic dataset is used instead" in ran[0].data_note
        # --data real insists: the failure stops the run
        if trouble == "rate-limit":
            srv.fail[first.filename] = [(429, "3600")]
        with pytest.raises(DownloadError, match=why):
            source.settle_data(choose_data("real"), progress=False)
    assert len(ran) == 1
