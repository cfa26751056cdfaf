"""A local stand-in for Zenodo, and the zips it serves (for the subset downloader's tests).

``build_fake_zenodo(types, ...) -> FakeData``
    Builds the archives of the records in :mod:`asdlib.data.zenodo`, named and laid out as the
    real ones: ``dev_data_<type>.zip`` (``<type>/train/normal_id_XX_*.wav`` and
    ``<type>/test/{normal,anomaly}_id_XX_*.wav``), ``eval_data_train_<type>.zip``
    (``<type>/train/...``), ``eval_data_test_<type>.zip`` (``<type>/test/id_XX_*.wav``), and
    the ground truth ``eval_data_list.csv``. With ``real=True`` the real clips of
    ``../shared/data/dcase2020-mini`` and ``../shared/data/dcase2020-extra`` go in first (all
    dev IDs' test clips, 75 slider id_00 training clips); short synthetic clips (valid 16 kHz
    mono 16-bit WAV) fill every (ID, part, label) up to the requested counts. Members are in
    name order (``order="name"``) or shuffled (``"shuffled"``), stored, deflated or alternating
    (``compression="mixed"``). ``FakeData.clips`` maps each clip's path under a data root to
    its bytes, so a test can compare what a download wrote with what was served.

``FakeZenodo(data)``, a context manager: an HTTP/1.1 server on 127.0.0.1 (ephemeral port, one
thread per connection, stopped on exit) that answers like Zenodo:

- ``GET /record/<record>/files/<file>?download=1`` redirects (302) to ``/files/<record>/<file>``
  (``redirect=False``: served directly); ``url`` is the base URL to pass as ``base_url``;
  ``HEAD`` answers the same headers without a body (not logged);
- ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` get 206 with ``Content-Range``;
- ``rate_limit = (k, window_s, retry_after)``: after ``k`` requests within ``window_s``
  seconds, 429 with ``Retry-After: <retry_after>`` (redirect hops count, as on Zenodo);
- ``fail[file] = [(status, retry_after or None) or None, ...]``: the next requests for ``file``
  get that status (e.g. 503), with ``Retry-After`` when given (None: answered normally);
- ``ignore_range = True``: 200 and the whole body whatever the Range;
- ``drop[file] = [n1, n2, ...]``: the next requests for members of ``file`` (not its directory)
  send ``n1`` (then ``n2``...) bytes of the body and close the connection (the headers
  announce the full length);
- ``corrupt[(file, member)] = k``: the next ``k`` responses that carry that member's data
  have one byte of it flipped;
- ``trickle[file] = seconds``: member requests for ``file`` send their body 1 KiB at a time,
  ``seconds`` apart (a server too slow for the client's deadline).

``log`` lists every request (:class:`Logged`: time, file, Range, status, bytes sent, the byte
span served, its kind ``redirect|directory|members|whole|limited|error``, and the members
whose bytes it carried in full).
"""
from __future__ import annotations

import io
import re
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import urlsplit

import numpy as np
import soundfile as sf

from asdlib.core.machines import DEV_IDS, EVAL_IDS, GROUND_TRUTH_FILE, MACHINE_TYPES
from asdlib.data.zenodo import FILES, ZenodoFile

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MINI = SHARED_DATA / "dcase2020-mini"
EXTRA = SHARED_DATA / "dcase2020-extra"
REAL_ROOTS = (MINI, EXTRA)
_NUMBER = re.compile(r"_(\d{8})\.wav$")


def real_data_available() -> bool:
    return MINI.is_dir() and EXTRA.is_dir()


# ---- clips and zips ----------------------------------------------------------------------------------


def synth_clip(seed: int, seconds: float = 0.25, anomaly: bool = False, sr: int = 16000, channels: int = 1,
               subtype: str = "PCM_16") -> bytes:
    """A short valid WAV (16 kHz, mono, 16-bit by default): a tone plus noise, louder noise if anomalous."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * (200 + 10 * (seed % 50)) * t) + rng.normal(0.0, 0.2 if anomaly else 0.03, n)
    x = np.clip(x, -1, 1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x if channels == 1 else np.repeat(x[:, None], channels, 1), sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def zip_bytes(members: Sequence[tuple[str, bytes]], compression: str = "mixed") -> bytes:
    """A zip of ``(name, data)`` in the given order; ``stored``, ``deflated`` or ``mixed`` (alternating)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i, (name, data) in enumerate(members):
            deflate = compression == "deflated" or (compression == "mixed" and i % 2 == 1)
            info = zipfile.ZipInfo(name, date_time=(2020, 3, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            zf.writestr(info, data, compresslevel=1 if deflate else None)
    return out.getvalue()


@dataclass(frozen=True)
class Span:
    """Where a member lies in its archive: ``[start, end)`` up to the next entry; data ``[data_start, data_end)``."""

    name: str
    start: int
    end: int
    data_start: int
    data_end: int


def member_spans(data: bytes) -> list[Span]:
    """The members of a zip in archive order, with their byte spans."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
        cd = zf.start_dir
    spans = []
    for k, info in enumerate(infos):
        h = info.header_offset
        n, m = int.from_bytes(data[h + 26:h + 28], "little"), int.from_bytes(data[h + 28:h + 30], "little")
        ds = h + 30 + n + m
        end = infos[k + 1].header_offset if k + 1 < len(infos) else cd
        spans.append(Span(info.filename, h, end, ds, ds + info.compress_size))
    return spans


@dataclass
class Archive:
    file: ZenodoFile
    data: bytes
    spans: list[Span]

    @property
    def directory_start(self) -> int:
        return self.spans[-1].end if self.spans else 0


@dataclass
class FakeData:
    archives: dict[str, Archive]  # file name -> archive
    truth_csv: bytes
    clips: dict[str, bytes]  # path under a data root (dev_data/fan/train/...) -> WAV bytes
    real: set[str] = field(default_factory=set)  # the paths of ``clips`` that are real recordings
    truth: dict[tuple[str, str], int] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        out = {name: a.data for name, a in self.archives.items()}
        out[GROUND_TRUTH_FILE] = self.truth_csv
        return out


def _number(name: str) -> int:
    m = _NUMBER.search(name)
    return int(m[1]) if m else -1


def _real_clips(machine_type: str, part: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for root in REAL_ROOTS:
        folder = root / "dev_data" / machine_type / part
        if folder.is_dir():
            for p in sorted(folder.glob("*.wav")):
                found[p.name] = p.read_bytes()
    return found


def build_fake_zenodo(
    types: Iterable[str] = MACHINE_TYPES,
    *,
    n_train: int = 6,
    n_test: int = 3,
    n_eval_test: int = 3,
    real: bool = False,
    seconds: float = 0.25,
    order: str = "name",
    compression: str = "mixed",
    parts: Iterable[str] = ("dev", "additional", "eval"),
    seed: int = 0,
) -> FakeData:
    """Archives in the official naming and layout (see the module docstring); counts are per (ID, label)."""
    types, parts = tuple(types), tuple(parts)
    rng = np.random.default_rng(seed)
    clips: dict[str, bytes] = {}
    real_paths: set[str] = set()
    truth: dict[tuple[str, str], int] = {}
    archives: dict[str, Archive] = {}
    counter = [seed * 100_000]

    def synth(anomaly: bool) -> bytes:
        counter[0] += 1
        return synth_clip(counter[0], seconds, anomaly)

    def fill(existing: dict[str, bytes], prefix: str, want: int, anomaly: bool) -> dict[str, bytes]:
        """The real clips named ``<prefix>_NNNNNNNN.wav``, then synthetic ones numbered after them."""
        mine = {n: b for n, b in existing.items() if n.startswith(prefix + "_")}
        k = max((_number(n) for n in mine), default=-1) + 1
        while len(mine) < want:
            mine[f"{prefix}_{k:08d}.wav"] = synth(anomaly)
            k += 1
        return mine

    for f in FILES:
        if f.machine_type not in types or f.part not in parts:
            continue
        t = f.machine_type
        members: dict[str, bytes] = {}  # member name -> bytes
        if f.part == "dev":
            for part in ("train", "test"):
                real_part = _real_clips(t, part) if real else {}
                for mid in DEV_IDS[t]:
                    labels = ("normal",) if part == "train" else ("normal", "anomaly")
                    for lab in labels:
                        got = fill(real_part, f"{lab}_id_{mid}", n_train if part == "train" else n_test, lab == "anomaly")
                        for name, data in got.items():
                            members[f"{t}/{part}/{name}"] = data
                            if name in real_part:
                                real_paths.add(f"dev_data/{t}/{part}/{name}")
        elif f.part == "additional":
            for mid in EVAL_IDS[t]:
                for name, data in fill({}, f"normal_id_{mid}", n_train, False).items():
                    members[f"{t}/train/{name}"] = data
        else:
            for mid in EVAL_IDS[t]:
                labels = [0] * n_eval_test + [1] * n_eval_test
                numbers = rng.permutation(len(labels))
                for label, k in zip(labels, numbers):
                    name = f"id_{mid}_{int(k):08d}.wav"
                    members[f"{t}/test/{name}"] = synth(bool(label))
                    truth[(t, name)] = label
        names = sorted(members)
        if order == "shuffled":
            names = [names[i] for i in rng.permutation(len(names))]
        elif order != "name":
            raise ValueError(f"order must be 'name' or 'shuffled', got {order!r}")
        data = zip_bytes([(n, members[n]) for n in names], compression)
        archives[f.filename] = Archive(f, data, member_spans(data))
        for n, b in members.items():
            clips[f"{f.dataset_dir}/{n}"] = b
    lines: list[str] = []
    for t in MACHINE_TYPES:
        rows = sorted((name, label) for (tt, name), label in truth.items() if tt == t)
        if rows:
            lines.append(t)
            lines += [f"{name},{'anomaly' if label else 'normal'}_{name},{label}" for name, label in rows]
    if not lines:  # the file must be valid even when no eval test archive is built
        lines = ["fan", "id_01_00000000.wav,normal_id_01_00000000.wav,0"]
    return FakeData(archives, ("\r\n".join(lines) + "\r\n").encode(), clips, real_paths, truth)


# ---- the server --------------------------------------------------------------------------------------------


@dataclass
class Logged:
    t: float  # time.monotonic() when the request arrived
    path: str
    file: str | None
    range: str | None
    status: int
    kind: str  # redirect | directory | members | whole | limited (429 or a ``fail`` status) | error
    span: tuple[int, int] | None = None  # [first, last] byte served
    sent: int = 0  # body bytes written
    members: tuple[str, ...] = ()  # members whose whole span (header + data) the body carried
    done: bool = False


class FakeZenodo:
    """Serves a :class:`FakeData` like Zenodo (see the module docstring); use as a context manager."""

    def __init__(self, data: FakeData | None = None, *, files: dict[str, bytes] | None = None,
                 redirect: bool = True) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.records: dict[str, str] = {f.filename: f.record for f in FILES}
        self.spans: dict[str, list[Span]] = {}
        if data is not None:
            self.files.update(data.files())
            self.spans = {name: a.spans for name, a in data.archives.items()}
        self.redirect = redirect
        self.ignore_range = False
        self.drop: dict[str, list[int]] = {}
        self.corrupt: dict[tuple[str, str], int] = {}
        self.trickle: dict[str, float] = {}
        self.rate_limit: tuple[int, float, str] | None = None
        self.fail: dict[str, list[tuple[int, str | None]]] = {}
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._active = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # an idle keep-alive connection ends its thread

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming): headers of a GET, no body, not logged
                m = re.fullmatch(r"/(record|files)/(\d+)/(?:files/)?([^/]+)", urlsplit(self.path).path)
                if m is None or m[3] not in server.files:
                    self.send_error(404)
                    return
                self.send_response(302 if m[1] == "record" and server.redirect else 200)
                if m[1] == "record" and server.redirect:
                    self.send_header("Location", f"/files/{m[2]}/{m[3]}")
                self.send_header("Content-Length", "0" if m[1] == "record" and server.redirect
                                 else str(len(server.files[m[3]])))
                self.end_headers()

            def do_GET(self) -> None:
                with server.lock:
                    server._active += 1
                try:
                    server._handle(self)
                finally:
                    with server.lock:
                        server._active -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/record"
        self._thread: threading.Thread | None = None

    # -- life cycle
    def start(self) -> FakeZenodo:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeZenodo:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Until no request is being answered (a refused body may still be in the socket)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self._active == 0:
                    return
            time.sleep(0.01)

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    def requests_for(self, filename: str, kind: str | None = None) -> list[Logged]:
        with self.lock:
            return [e for e in self.log if e.file == filename and (kind is None or e.kind == kind)]

    # -- answering
    def _limited(self, now: float) -> str | None:
        if self.rate_limit is None:
            return None
        k, window, retry_after = self.rate_limit
        while self._recent and now - self._recent[0] >= window:
            self._recent.popleft()
        if len(self._recent) >= k:
            return retry_after
        self._recent.append(now)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        now = time.monotonic()
        url = urlsplit(h.path)
        m = re.fullmatch(r"/(record|files)/(\d+)/(?:files/)?([^/]+)", url.path)
        rng = h.headers.get("Range")
        name = m[3] if m else None
        entry = Logged(now, url.path, name, rng, 0, "error")
        with self.lock:
            self.log.append(entry)
            limited = self._limited(now)
            failures = self.fail.get(name or "")
            failure = failures.pop(0) if failures and limited is None else None
        if limited is not None or (failure is not None and failure[0] not in (403, 404, 410)):
            status, retry_after = (429, limited) if limited is not None else failure
            entry.status, entry.kind, entry.done = status, "limited", True
            h.send_response(status)
            if retry_after is not None:
                h.send_header("Retry-After", retry_after)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if failure is not None and failure[0] in (403, 404, 410):
            entry.status, entry.kind, entry.done = failure[0], "error", True
            h.send_error(failure[0])
            return
        valid = m is not None and name in self.files and self.records.get(name) == m[2] and (
            (m[1] == "record" and url.path.endswith(f"/files/{name}")) or (m[1] == "files" and url.path.count("/") == 3))
        if not valid:
            entry.status, entry.done = 404, True
            h.send_error(404)
            return
        if m[1] == "record" and self.redirect:
            entry.status, entry.kind, entry.done = 302, "redirect", True
            h.send_response(302)
            h.send_header("Location", f"/files/{m[2]}/{name}" + (f"?{url.query}" if url.query else ""))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        self._serve(h, name, rng, entry)

    def _serve(self, h: BaseHTTPRequestHandler, name: str, rng: str | None, entry: Logged) -> None:
        data = self.files[name]
        size = len(data)
        if rng is None or self.ignore_range:
            first, last, status = 0, size - 1, 200
        else:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m is None or (not m[1] and not m[2]):
                entry.status, entry.done = 400, True
                h.send_error(400)
                return
            if not m[1]:
                first, last = max(0, size - int(m[2])), size - 1
            else:
                first, last = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
            if first >= size or first > last:
                entry.status, entry.done = 416, True
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{size}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        body = data[first:last + 1]
        spans = self.spans.get(name, [])
        directory_start = spans[-1].end if spans else size
        with self.lock:
            for (fname, member), left in list(self.corrupt.items()):
                if fname != name or left <= 0:
                    continue
                span = next((s for s in spans if s.name == member), None)
                if span is not None and span.data_end > span.data_start:
                    at = (span.data_start + span.data_end) // 2
                    if first <= at <= last:
                        body = bytearray(body) if not isinstance(body, bytearray) else body
                        body[at - first] ^= 0xFF
                        self.corrupt[(fname, member)] = left - 1
        entry.status, entry.span = status, (first, last)
        entry.kind = "whole" if status == 200 else ("directory" if (rng or "").startswith("bytes=-")
                                                   or first >= directory_start else "members")
        with self.lock:
            drops = self.drop.get(name) if entry.kind == "members" else None
            cut = drops.pop(0) if drops else None
        entry.members = tuple(s.name for s in spans if first <= s.start and s.data_end <= last + 1)
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(body)))
        if status == 206:
            h.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        h.end_headers()
        view = memoryview(bytes(body))[: cut if cut is not None else len(body)]
        delay = self.trickle.get(name) if entry.kind == "members" else None
        piece = 1 << 10 if delay else 1 << 16
        try:
            for i in range(0, len(view), piece):
                h.wfile.write(view[i:i + piece])
                entry.sent += len(view[i:i + piece])
                if delay:
                    h.wfile.flush()
                    time.sleep(delay)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            h.close_connection = True
        if cut is not None or status == 200:
            h.close_connection = True
        if cut is not None:
            entry.members = tuple(s.name for s in spans if first <= s.start and s.data_end <= first + cut)
        entry.done = True
