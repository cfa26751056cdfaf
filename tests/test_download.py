"""Downloader end to end against a local HTTP server (Range support, cut connections, errors)."""
from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from asdlib.cli.main import main
from asdlib.core.errors import ConfigError, DownloadError
from asdlib.data.download import download, is_done
from asdlib.data.index import index_dataset
from asdlib.data.zenodo import FILES, ZenodoFile, file_url, select_files

FAST = dict(progress=False, chunk_size=512, timeout=5.0, retry_wait=0.0)


class FileServer:
    """Serves ``files`` (URL path -> bytes) with optional Range, one-time cuts and forced status codes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}  # path -> bytes sent before the connection is dropped (once)
        self.status: dict[str, int] = {}  # path -> forced HTTP status
        self.busy: dict[str, list[tuple[int, str | None]]] = {}  # path -> the next answers: (status, Retry-After)
        self.ignore_range = False
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, status sent)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path, rng = urlsplit(self.path).path, self.headers.get("Range")
                if server.busy.get(path):
                    code, retry_after = server.busy[path].pop(0)
                    server.log.append((path, rng, code))
                    self.send_response(code)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(path)
                code = server.status.get(path, 200 if data is not None else 404)
                if code != 200:
                    server.log.append((path, rng, code))
                    self.send_error(code)
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        server.log.append((path, rng, 416))
                        self.send_error(416)
                        return
                body = data[start:]
                server.log.append((path, rng, 206 if start else 200))
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(path, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/record"

    def add(self, f: ZenodoFile, data: bytes) -> None:
        self.files[urlsplit(file_url(f, self.url)).path] = data

    def path_of(self, f: ZenodoFile) -> str:
        return urlsplit(file_url(f, self.url)).path


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=5)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _wav_bytes(make_wav, tmp_path: Path, seconds: float = 0.05) -> bytes:
    return make_wav(tmp_path / "src" / "clip.wav", seconds=seconds).read_bytes()


@pytest.fixture
def payloads(make_wav, tmp_path: Path) -> dict[ZenodoFile, bytes]:
    """Fan archives of all three kinds (dev with a ``dev_data/`` prefix, others bare) and a ground truth."""
    wav = _wav_bytes(make_wav, tmp_path)
    data = {
        "dev": _zip({"dev_data/fan/": b"", **{f"dev_data/fan/train/normal_id_00_{k:08d}.wav": wav for k in range(3)},
                     "dev_data/fan/test/normal_id_02_00000000.wav": wav, "dev_data/fan/test/anomaly_id_02_00000000.wav": wav}),
        "additional": _zip({f"fan/train/normal_id_01_{k:08d}.wav": wav for k in range(2)}),
        "eval": _zip({"fan/test/id_01_00000000.wav": wav, "fan/test/id_01_00000001.wav": wav, "__MACOSX/._x": b"junk"}),
        "truth": b"fan\nid_01_00000000.wav,anomaly_id_01_00000003.wav,1\nid_01_00000001.wav,normal_id_01_00000009.wav,0\n",
    }
    out = {}
    for f in select_files(["fan"]):
        body = data[f.part]
        md5 = hashlib.md5(body).hexdigest() if f.part != "truth" else None
        out[replace(f, record="1", md5=md5, size=len(body) if f.part == "dev" else None)] = body
    return out


def _serve(server: FileServer, payloads: dict[ZenodoFile, bytes]) -> list[ZenodoFile]:
    for f, body in payloads.items():
        server.add(f, body)
    return list(payloads)


def test_clean_download_extracts_and_rerun_skips(server, payloads, tmp_path: Path) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    results = download(root, files=files, base_url=server.url, retries=0, **FAST)
    assert [r.status for r in results] == ["downloaded"] * 4
    df = index_dataset(root)
    assert len(df) == 5 + 2 + 2
    eval_test = df[(df.dataset == "eval") & (df.part == "test")].set_index("file")["label"]
    assert eval_test.to_dict() == {"id_01_00000000.wav": 1, "id_01_00000001.wav": 0}
    assert sorted(p.name for p in (root / "downloads").iterdir()) == sorted(f"{f.filename}.done" for f in files)
    assert all(is_done(root, f) for f in files)
    n_requests = len(server.log)
    again = download(root, files=files, base_url=server.url, retries=0, **FAST)
    assert [r.status for r in again] == ["skipped"] * 4 and len(server.log) == n_requests
    # a deleted extraction makes that part be fetched again
    import shutil

    shutil.rmtree(root / "eval_data" / "fan" / "test")
    third = download(root, files=files, base_url=server.url, retries=0, **FAST)
    assert [r.file.part for r in third if r.status == "downloaded"] == ["eval"]


def test_cut_download_resumes_with_range(server, payloads, tmp_path: Path) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    dev = next(f for f in files if f.part == "dev")
    server.cut_once[server.path_of(dev)] = 3000
    with pytest.raises(DownloadError, match="run again to resume"):
        download(root, files=[dev], base_url=server.url, retries=0, **FAST)
    part = root / "downloads" / f"{dev.filename}.part"
    kept = part.stat().st_size  # what arrived, less at most the chunk being read when it broke
    assert 3000 - FAST["chunk_size"] <= kept <= 3000
    download(root, files=[dev], base_url=server.url, retries=0, **FAST)
    assert (server.path_of(dev), f"bytes={kept}-", 206) in server.log
    assert not part.exists() and is_done(root, dev)
    assert len(index_dataset(root, datasets=["dev"])) == 5
    # within one call, a retry resumes by itself
    eval_ = next(f for f in files if f.part == "eval")
    server.cut_once[server.path_of(eval_)] = 700
    download(root, files=[eval_], base_url=server.url, retries=2, **FAST)
    ranges = [r for p, r, code in server.log if p == server.path_of(eval_) and code == 206]
    assert len(ranges) == 1 and int(ranges[0][6:-1]) <= 700 and is_done(root, eval_)


def test_server_ignoring_range_restarts_from_zero(server, payloads, tmp_path: Path) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    add = next(f for f in files if f.part == "additional")
    part = root / "downloads" / f"{add.filename}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that is not the start of the zip")
    server.ignore_range = True
    download(root, files=[add], base_url=server.url, retries=0, **FAST)
    assert server.log[-1][1] is not None and server.log[-1][2] == 200  # asked for a range, got the whole file
    assert is_done(root, add) and len(index_dataset(root)) == 2


def test_wrong_checksum_leaves_nothing(server, payloads, tmp_path: Path) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    dev = next(f for f in files if f.part == "dev")
    bad = replace(dev, md5="0" * 32)
    with pytest.raises(DownloadError, match="checksum mismatch") as e:
        download(root, files=[bad], base_url=server.url, retries=0, **FAST)
    assert dev.filename in str(e.value)
    assert list((root / "downloads").iterdir()) == [] and not (root / "dev_data").exists()


def test_bad_ground_truth_and_bad_member_are_rejected(server, payloads, tmp_path: Path, make_wav) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    truth = next(f for f in files if f.part == "truth")
    server.add(truth, b"fan\nid_01_00000000.wav,x,7\n")
    with pytest.raises(DownloadError, match="not a valid ground truth"):
        download(root, files=[truth], base_url=server.url, retries=0, **FAST)
    assert not (root / "eval_data_list.csv").exists() and list((root / "downloads").iterdir()) == []
    add = next(f for f in files if f.part == "additional")
    body = _zip({"pump/train/normal_id_01_00000000.wav": _wav_bytes(make_wav, tmp_path)})
    server.add(add, body)
    with pytest.raises(DownloadError, match="unexpected member 'pump/train"):
        download(root, files=[replace(add, md5=hashlib.md5(body).hexdigest())], base_url=server.url, retries=0, **FAST)
    assert not (root / "eval_data").exists() and not is_done(root, add)


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors(server, payloads, tmp_path: Path, status: int) -> None:
    files = _serve(server, payloads)
    dev = next(f for f in files if f.part == "dev")
    server.status[server.path_of(dev)] = status
    with pytest.raises(DownloadError, match=f"HTTP {status}") as e:
        download(tmp_path / "data", files=[dev], base_url=server.url, retries=1, **FAST)
    assert file_url(dev, server.url) in str(e.value)
    assert len(server.log) == (2 if status == 500 else 1)  # 5xx is retried, 404 is not


def test_disk_space_is_checked_first(server, payloads, tmp_path: Path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    files = _serve(server, payloads)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100, 90, 10))
    with pytest.raises(DownloadError, match="not enough disk space"):
        download(tmp_path / "data", files=files, base_url=server.url, retries=0, **FAST)
    assert server.log == []


def test_zenodo_config(monkeypatch) -> None:
    assert len(FILES) == 19 and sum(f.md5 is None for f in FILES) == 1
    assert {f.part for f in select_files(["fan"])} == {"dev", "additional", "eval", "truth"}
    assert [f.filename for f in select_files("pump", parts="eval")] == ["eval_data_test_pump.zip"]
    f = select_files("valve", parts=["dev"])[0]
    assert file_url(f) == "https://zenodo.org/record/3678171/files/dev_data_valve.zip?download=1"
    monkeypatch.setenv("ASDLIB_ZENODO_URL", "http://127.0.0.1:9/mirror/")
    assert file_url(f) == "http://127.0.0.1:9/mirror/3678171/files/dev_data_valve.zip?download=1"
    assert file_url(f, "http://x/y").startswith("http://x/y/3678171/")
    with pytest.raises(ConfigError, match="lawnmower"):
        select_files(["lawnmower"])
    with pytest.raises(ConfigError, match="train"):
        select_files(parts=["train"])


def test_cli_download_truth(server, payloads, tmp_path: Path, capsys) -> None:
    truth = next(f for f in payloads if f.part == "truth")
    real = next(f for f in FILES if f.part == "truth")
    server.add(real, payloads[truth])
    root = tmp_path / "data"
    argv = ["download", "--root", str(root), "--parts", "truth", "--base-url", server.url, "--no-progress", "--retries", "0"]
    assert main(argv) == 0 and (root / "eval_data_list.csv").is_file()
    assert main(argv) == 0 and "skipped" in capsys.readouterr().out
    assert main(["download", "--root", str(tmp_path / "other"), "--parts", "eval", "--types", "fan",
                 "--base-url", server.url, "--no-progress", "--retries", "0"]) == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_rerun_after_a_kill_mid_extraction_uses_the_verified_zip(server, payloads, tmp_path: Path) -> None:
    files, root = _serve(server, payloads), tmp_path / "data"
    dev = next(f for f in files if f.part == "dev")
    download(root, files=[dev], base_url=server.url, retries=0, keep_archives=True, **FAST)
    assert (root / "downloads" / dev.filename).is_file()
    # what a kill between extraction and the marker leaves: no marker, a temp folder, a stale part folder
    (root / "downloads" / f"{dev.filename}.done").unlink()
    leftover = root / "downloads" / f".extract-{dev.filename}" / "fan" / "train" / "normal_id_00_00000099.wav"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    (root / "dev_data" / "fan" / "train" / "normal_id_00_00000098.wav").write_bytes(b"stale")
    server.files.clear()  # any request would now fail with 404
    n_requests = len(server.log)
    download(root, files=[dev], base_url=server.url, retries=0, **FAST)
    assert len(server.log) == n_requests and is_done(root, dev)
    assert sorted(p.name for p in (root / "downloads").iterdir()) == [f"{dev.filename}.done"]
    assert len(index_dataset(root)) == 5  # the stale clip is gone with the replaced part folder


def test_retry_after_is_honoured_within_bounds(server, payloads, tmp_path: Path, monkeypatch) -> None:
    import time

    files, root = _serve(server, payloads), tmp_path / "data"
    dev = next(f for f in files if f.part == "dev")
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # the test does not wait the minutes the server asks for
    server.busy[server.path_of(dev)] = [(429, "60"), (503, "90")]
    download(root, files=[dev], base_url=server.url, progress=False, retries=3, retry_wait=2.0)
    assert is_done(root, dev) and [code for p, _, code in server.log if p == server.path_of(dev)] == [429, 503, 200]
    assert waits == [60.0, 90.0]  # as asked, not the linear 2 and 4 s of the old loop
    # longer than max_wait: a clear error at once, no wait, no endless loop
    add = next(f for f in files if f.part == "additional")
    server.busy[server.path_of(add)] = [(429, "3600")]
    waits.clear()
    with pytest.raises(DownloadError, match=r"asks to wait 3600 s \(Retry-After\), more than the 120 s allowed"):
        download(root, files=[add], base_url=server.url, progress=False, retries=3)
    assert waits == [] and not is_done(root, add)
    # without Retry-After: a backoff doubling from retry_wait, within the retries of the file
    server.busy[server.path_of(add)] = [(503, None)] * 3
    download(root, files=[add], base_url=server.url, progress=False, retries=3, retry_wait=2.0)
    assert waits == [2.0, 4.0, 8.0] and is_done(root, add)


def test_negative_retries_are_refused(server, payloads, tmp_path: Path, capsys) -> None:
    files = _serve(server, payloads)
    with pytest.raises(ConfigError, match="retries must be a whole number, 0 or more"):
        download(tmp_path / "data", files=files, base_url=server.url, retries=-1, **{**FAST, "retry_wait": 0.0})
    with pytest.raises(SystemExit) as e:
        main(["download", "--root", str(tmp_path / "data"), "--parts", "truth", "--base-url", server.url,
              "--retries", "-1"])
    assert e.value.code == 2 and "--retries: must be a whole number, 0 or more" in capsys.readouterr().err
    assert server.log == []
