"""The main job's data source: real subset when Zenodo answers, synthetic otherwise, and saying which."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from asdlib.core.errors import ConfigError
from asdlib.study.pipeline import DATA_NOTE_START, ReproduceConfig, data_note, write_data_note
from asdlib.study.source import choose_data


class _Head(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()

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


def test_auto_uses_real_data_when_the_server_answers(head_server, monkeypatch):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    choice = choose_data("auto", base_url=head_server)
    assert choice.kind == "real" and "reachable" in choice.reason


def test_auto_falls_back_to_synthetic_within_seconds(monkeypatch):
    monkeypatch.delenv("ASDLIB_DATA", raising=False)
    t0 = time.perf_counter()
    choice = choose_data("auto", base_url=f"http://127.0.0.1:{_closed_port()}/record", timeout=2.0)
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
