"""Read chosen members of a zip archive over HTTP with range requests, never the whole archive.

The plumbing is ``requests`` (connection reuse, redirects, streamed bodies) and the standard
library: ``zipfile`` parses the end-of-central-directory record (zip64 included) and the
central directory out of a small seekable view of the remote file (:class:`_RemoteFile`),
``struct`` reads the local file headers and ``zlib`` inflates and checks the CRC-32.

How an archive is read (:class:`RemoteZip`):

1. one request ``Range: bytes=-<tail_bytes>`` (default 1 MiB) gives the archive's size and its
   last bytes, which hold the end-of-central-directory record and, for the DCASE2020 zips
   (a few thousand entries, under 1 MiB of directory), the whole central directory; a larger
   directory costs exactly one more request for the missing part;
2. each chosen member occupies ``[header_offset, next entry's header_offset)``; members that
   lie next to each other (or with at most ``max_gap`` bytes of unwanted members between them,
   and at most ``max_request`` bytes in all) are fetched with one request (:func:`coalesce`);
3. the body is streamed and cut into members as it arrives: each one is inflated (stored or
   deflated), its size and CRC-32 compared with the central directory, and handed over at once,
   so a connection dropped in the middle of a request loses only the member in flight; the
   members not yet received are planned again and fetched with a new request.

The server must answer ``Range`` with 206 Partial Content. One that answers 200 (the whole
archive) is refused at once: the response is closed before its body is read and
:class:`RangeNotSupported` says why. 429 and 5xx answers are retried after ``Retry-After``
(seconds or an HTTP date) or an exponential backoff, both bounded by ``max_wait``; requests are
spaced by ``min_interval`` seconds (Zenodo allows about 60 a minute), redirect hops included.
The final URL of a redirected request is remembered, so later ranges of the same archive go
straight to it (and go back to the original URL if the remembered one stops answering).
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Iterator, Sequence

from ..core.errors import DownloadError

__all__ = ["RangeClient", "RemoteZip", "Member", "RangeNotSupported", "coalesce", "retry_after_seconds"]

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_TAIL_BYTES = 1 << 20
DEFAULT_MAX_GAP = 1 << 20  # about three clips of unwanted bytes may be read to save a request
DEFAULT_MAX_REQUEST = 64 << 20
CHUNK = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, csize, usize, n, m
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class RangeNotSupported(DownloadError):
    """The server answered a ``Range`` request with the whole file (200): a subset is impossible."""


class _BodyCut(Exception):
    """The connection broke (or closed early) in the middle of a body: retry what is missing."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (it is either a number of seconds or an HTTP date); None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _iter_body(resp) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` hands over every byte received before a connection
    drops (``iter_content`` would lose the chunk in progress, up to ``CHUNK`` bytes)."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 < 2.2
        yield from resp.iter_content(CHUNK)
        return
    while chunk := read1(CHUNK):
        yield chunk


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = _CONTENT_RANGE.match(value or "")
    if m is None:
        return None
    return int(m[1]), int(m[2]), (None if m[3] == "*" else int(m[3]))


class RangeClient:
    """A ``requests`` session that sends range requests politely and checks the answers.

    ``retries`` bounds the attempts after a failed connection or a 429/5xx answer (per
    request); ``min_interval`` spaces requests (1 s: at most 60 a minute, counting redirect
    hops); ``backoff`` is the first wait when the server gives no ``Retry-After`` (doubled on
    each attempt); no wait exceeds ``max_wait``, and a server that asks for more is reported
    as an error rather than waited for. ``requests``, ``bytes_received`` and ``waited_s``
    count what this client did.
    """

    def __init__(self, *, timeout: float = 60.0, retries: int = 5, min_interval: float = 1.0, backoff: float = 2.0,
                 max_wait: float = 120.0, user_agent: str = "asdlib-subset") -> None:
        import requests

        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.timeout, self.retries, self.min_interval = timeout, retries, min_interval
        self.backoff, self.max_wait = backoff, max_wait
        self.requests = 0  # HTTP requests sent, redirect hops included
        self.bytes_received = 0
        self.waited_s = 0.0  # time slept for Retry-After, backoff and spacing
        self._resolved: dict[str, str] = {}  # original URL -> where its redirects led
        self._next_time = 0.0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RangeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
            self.waited_s += seconds

    def backoff_wait(self, attempt: int) -> float:
        return min(self.max_wait, self.backoff * 2 ** max(attempt - 1, 0))

    def _retry_wait(self, resp, attempt: int, url: str) -> float:
        asked = retry_after_seconds(resp.headers.get("Retry-After"))
        if asked is None:
            return self.backoff_wait(attempt)
        if asked > self.max_wait:
            raise DownloadError(
                f"{url}: HTTP {resp.status_code}, the server asks to wait {asked:.0f} s (Retry-After), more than "
                f"the {self.max_wait:.0f} s allowed; run the command again later (verified clips are kept)"
            )
        return asked

    @contextlib.contextmanager
    def open(self, url: str, byte_range: str | None = None, expect: tuple[int, int] | None = None) -> Iterator:
        """A streamed response for ``url`` with ``Range: <byte_range>``, checked; closed on exit.

        With a range, only a 206 whose ``Content-Range`` matches ``expect`` (first, last byte)
        passes; a 200 closes the connection before the body and raises
        :class:`RangeNotSupported`. Without a range, only 200 passes.
        """
        import requests

        headers = {"Accept-Encoding": "identity"}
        if byte_range:
            headers["Range"] = byte_range
        attempt = 0
        while True:
            target = self._resolved.get(url, url)
            wait = self._next_time - time.monotonic()
            self._sleep(wait)
            try:
                resp = self.session.get(target, headers=headers, stream=True, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                self.requests += 1
                self._next_time = time.monotonic() + self.min_interval
                attempt += 1
                if attempt > self.retries:
                    raise DownloadError(f"{url}: no answer after {attempt} attempt(s): {e}") from e
                self._sleep(self.backoff_wait(attempt))
                continue
            hops = len(resp.history)
            self.requests += 1 + hops
            self._next_time = time.monotonic() + self.min_interval * (1 + hops)
            if hops:
                self._resolved[url] = resp.url
            code = resp.status_code
            if code in RETRY_STATUS:
                resp.close()
                attempt += 1
                if attempt > self.retries:
                    raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''} after {attempt} attempt(s); "
                                        "the server is busy or rate-limiting: run the command again later")
                self._sleep(self._retry_wait(resp, attempt, url))
                continue
            if code in (401, 403, 404, 410) and target != url:
                resp.close()  # a remembered redirect target that expired: follow the original URL again
                self._resolved.pop(url, None)
                continue
            try:
                if byte_range and code == 200:
                    length = resp.headers.get("Content-Length")
                    size = f" ({int(length):,} bytes)" if length and length.isdigit() else ""
                    raise RangeNotSupported(
                        f"{url}: the server ignored the Range request and started sending the whole file{size} "
                        "(HTTP 200 instead of 206 Partial Content). A subset cannot be read from it without "
                        "downloading entire archives, so the connection was closed and nothing was written. Use a "
                        "server that honours Range (zenodo.org does), or download whole archives with "
                        "`asdlib download` without --subset."
                    )
                wanted = 206 if byte_range else 200
                if code != wanted:
                    raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''}".rstrip()
                                        + (f" for Range {byte_range}" if byte_range else ""))
                if byte_range:
                    got = _parse_content_range(resp.headers.get("Content-Range"))
                    if got is None or (expect is not None and got[:2] != expect):
                        raise DownloadError(f"{url}: asked for {byte_range}, the server sent "
                                            f"Content-Range {resp.headers.get('Content-Range')!r}")
            except BaseException:
                resp.close()  # closes the socket: a refused body is not read
                raise
            try:
                yield resp
            finally:
                resp.close()
            return

    def read_range(self, url: str, start: int | None, end: int | None, suffix: int | None = None) -> tuple[int, bytes, int]:
        """Bytes ``[start, end]`` (or the last ``suffix`` bytes) as ``(first offset, data, file size)``.

        A body cut short is fetched again (``retries`` times).
        """
        import requests
        import urllib3

        rng = f"bytes=-{suffix}" if suffix is not None else f"bytes={start}-{end}"
        expect = None if suffix is not None else (start, end)
        for attempt in range(1, self.retries + 2):
            try:
                with self.open(url, rng, expect) as resp:
                    first, last, total = _parse_content_range(resp.headers["Content-Range"])
                    parts = []
                    for chunk in _iter_body(resp):
                        parts.append(chunk)
                        self.bytes_received += len(chunk)
                    data = b"".join(parts)
                if len(data) != last - first + 1:
                    raise _BodyCut(f"got {len(data)} of {last - first + 1} bytes")
                if total is None:
                    raise DownloadError(f"{url}: the server does not say how large the file is (Content-Range */)")
                return first, data, total
            except (_BodyCut, requests.exceptions.ChunkedEncodingError, requests.ConnectionError,
                    requests.Timeout, urllib3.exceptions.HTTPError) as e:
                if attempt > self.retries:
                    raise DownloadError(f"{url}: reading {rng} failed after {attempt} attempt(s): {e}") from e
                self._sleep(self.backoff_wait(attempt))
        raise AssertionError("unreachable")

    def read_whole(self, url: str, max_bytes: int) -> bytes:
        """A small file, whole (no Range); refused when larger than ``max_bytes``."""
        import requests
        import urllib3

        for attempt in range(1, self.retries + 2):
            try:
                with self.open(url) as resp:
                    length = resp.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > max_bytes:
                        raise DownloadError(f"{url}: {int(length):,} bytes, expected a small file (at most {max_bytes:,})")
                    parts, n = [], 0
                    for chunk in _iter_body(resp):
                        parts.append(chunk)
                        n += len(chunk)
                        self.bytes_received += len(chunk)
                        if n > max_bytes:
                            raise DownloadError(f"{url}: more than {max_bytes:,} bytes, expected a small file")
                data = b"".join(parts)
                if length and length.isdigit() and len(data) != int(length):
                    raise _BodyCut(f"got {len(data)} of {length} bytes")
                return data
            except (_BodyCut, requests.exceptions.ChunkedEncodingError, requests.ConnectionError,
                    requests.Timeout, urllib3.exceptions.HTTPError) as e:
                if attempt > self.retries:
                    raise DownloadError(f"{url}: download failed after {attempt} attempt(s): {e}") from e
                self._sleep(self.backoff_wait(attempt))
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Member:
    """One archive member and the bytes it occupies: ``[start, end)`` = local header, data and
    any data descriptor, up to the next entry (or the central directory)."""

    info: zipfile.ZipInfo
    start: int
    end: int

    @property
    def name(self) -> str:
        return self.info.filename

    @property
    def crc(self) -> int:
        return self.info.CRC

    @property
    def size(self) -> int:
        return self.info.file_size

    @property
    def compressed_size(self) -> int:
        return self.info.compress_size


def coalesce(members: Sequence[Member], max_gap: int = DEFAULT_MAX_GAP,
             max_request: int = DEFAULT_MAX_REQUEST) -> list[list[Member]]:
    """Group members (in archive order) so that each group is read with one request.

    A member joins the previous group when at most ``max_gap`` unwanted bytes lie between them
    and the group then spans at most ``max_request`` bytes (a single larger member is a group
    of its own). The wasted bytes are thus at most ``max_gap`` per join.
    """
    groups: list[list[Member]] = []
    for m in sorted(members, key=lambda m: m.start):
        if groups and m.start - groups[-1][-1].end <= max_gap and m.end - groups[-1][0].start <= max_request:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


class _RemoteFile:
    """The read-only, seekable file that :class:`zipfile.ZipFile` needs, over cached byte spans.

    Reads that the cache does not cover are fetched (only the missing head of the span when
    its end is cached already: the central directory usually ends inside the cached tail).
    """

    def __init__(self, owner: RemoteZip) -> None:
        self._owner = owner
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        size = self._owner.size
        pos = offset if whence == 0 else self._pos + offset if whence == 1 else size + offset
        if pos < 0:
            raise OSError("seek before the start of the file")
        self._pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        size = self._owner.size
        end = size if n is None or n < 0 else min(size, self._pos + n)
        if end <= self._pos:
            return b""
        data = self._owner.bytes_at(self._pos, end)
        self._pos = end
        return data


class RemoteZip:
    """The central directory of a remote zip, and its members fetched by range requests."""

    def __init__(self, client: RangeClient, url: str, tail_bytes: int = DEFAULT_TAIL_BYTES) -> None:
        self.client, self.url = client, url
        self.directory_requests = 0
        first, data, self.size = client.read_range(url, None, None, suffix=tail_bytes)
        self.directory_requests += 1
        self._spans: list[tuple[int, bytes]] = [(first, data)]
        try:
            with zipfile.ZipFile(_RemoteFile(self)) as zf:
                infos = zf.infolist()
                start_dir = zf.start_dir
        except (zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, ValueError) as e:
            raise DownloadError(f"{url}: not a readable zip archive ({e})") from e
        self.start_dir = start_dir
        offsets = sorted({i.header_offset for i in infos} | {start_dir})
        following = {a: b for a, b in zip(offsets, offsets[1:])}
        self.members = {i.filename: Member(i, i.header_offset, following[i.header_offset])
                        for i in infos if not i.is_dir()}
        self.infos = infos
        listing = "\n".join(f"{i.filename}\t{i.CRC:08x}\t{i.file_size}\t{i.header_offset}" for i in infos)
        self.directory_digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()
        self._spans = []  # the directory is parsed: free the cached bytes

    def bytes_at(self, start: int, end: int) -> bytes:
        """``[start, end)`` from the cache, fetching (and caching) what is missing."""
        for a, data in self._spans:
            if a <= start and end <= a + len(data):
                return data[start - a:end - a]
        fetch_end, tail = end, b""
        for a, data in self._spans:  # the end of the wanted span is cached: fetch only its head
            if start < a < end <= a + len(data):
                fetch_end, tail = a, data[:end - a]
        _, head, _ = self.client.read_range(self.url, start, fetch_end - 1)
        self.directory_requests += 1
        self._spans.append((start, head + tail))
        return head + tail

    def fetch(self, members: Sequence[Member], *, max_gap: int = DEFAULT_MAX_GAP,
              max_request: int = DEFAULT_MAX_REQUEST, crc_retries: int = 2, progress=None) -> Iterator[tuple[Member, bytes]]:
        """Yield ``(member, uncompressed bytes)`` for each member, each checked against its size and CRC-32.

        Coalesced requests (see :func:`coalesce`). A member that fails its check is discarded
        and fetched again, at most ``crc_retries`` times, then :class:`DownloadError`. A
        connection cut mid-body is retried from the first member not yet received; after
        ``client.retries`` cuts in a row without any member received, :class:`DownloadError`.
        ``progress`` (a tqdm bar or None) is advanced by the bytes received.
        """
        remaining = {m.name: m for m in members}
        failures: dict[str, int] = {}
        cuts_in_a_row = 0
        self.member_requests = 0
        while remaining:
            for group in coalesce(list(remaining.values()), max_gap, max_request):
                received = 0
                try:
                    for m, data, problem in self._stream_group(group, progress):
                        if problem is None:
                            received += 1
                            cuts_in_a_row = 0
                            del remaining[m.name]
                            yield m, data
                            continue
                        failures[m.name] = failures.get(m.name, 0) + 1
                        if failures[m.name] > crc_retries:
                            raise DownloadError(
                                f"{self.url}: member {m.name} failed its check {failures[m.name]} times ({problem}); "
                                "the server keeps sending damaged bytes. Nothing damaged was kept: run the command "
                                "again later to fetch what is missing"
                            )
                except _BodyCut as e:
                    cuts_in_a_row = 0 if received else cuts_in_a_row + 1
                    if cuts_in_a_row > self.client.retries:
                        raise DownloadError(
                            f"{self.url}: the connection broke {cuts_in_a_row} times in a row without delivering a "
                            f"member ({e}); verified members are kept, run the command again to resume"
                        ) from e
                    self.client._sleep(self.client.backoff_wait(max(cuts_in_a_row, 1)))
                    break  # plan the remaining members again

    def _stream_group(self, group: list[Member], progress) -> Iterator[tuple[Member, bytes | None, str | None]]:
        import requests
        import urllib3

        start, end = group[0].start, group[-1].end
        buf, base, idx = bytearray(), start, 0  # base: archive offset of buf[0]
        self.member_requests += 1
        try:
            with self.client.open(self.url, f"bytes={start}-{end - 1}", (start, end - 1)) as resp:
                total = _parse_content_range(resp.headers.get("Content-Range"))[2]
                if total is not None and total != self.size:
                    raise DownloadError(f"{self.url}: the archive is now {total:,} bytes, it was {self.size:,} when its "
                                        "directory was read (changed on the server?); run the command again")
                for chunk in _iter_body(resp):
                    self.client.bytes_received += len(chunk)
                    if progress is not None:
                        progress.update(len(chunk))
                    buf += chunk
                    while idx < len(group):
                        m = group[idx]
                        got = _take_member(m, buf, m.start - base)
                        if got is None:
                            break  # not all of it yet
                        used, data, problem = got
                        del buf[:m.start - base + used]
                        base = m.start + used
                        idx += 1
                        yield m, data, problem
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError, requests.Timeout,
                urllib3.exceptions.HTTPError) as e:
            raise _BodyCut(str(e)) from e
        if idx < len(group):
            raise _BodyCut(f"the body ended {len(group) - idx} member(s) short")


def _take_member(m: Member, buf: bytearray, at: int) -> tuple[int, bytes | None, str | None] | None:
    """Decode member ``m`` whose local header starts at ``buf[at]``.

    Returns None while ``buf`` does not hold all of it yet, else ``(bytes used from at,
    data or None, problem or None)``.
    """
    if len(buf) < at + _LOCAL_HEADER.size:
        return None
    sig, _, flags, _, _, _, _, _, _, n, extra = _LOCAL_HEADER.unpack_from(buf, at)
    if sig != _LOCAL_SIGNATURE:
        span = m.end - m.start
        return (span, None, "no local file header where the central directory puts it") if len(buf) >= at + span else None
    data_at = at + _LOCAL_HEADER.size + n + extra
    data_end = data_at + m.compressed_size
    if len(buf) < data_end:
        return None
    used = data_end - at
    info = m.info
    if info.flag_bits & 0x1:
        raise DownloadError(f"{m.name}: encrypted zip member; not supported")
    encoding = "utf-8" if flags & 0x800 else "cp437"
    if bytes(buf[at + _LOCAL_HEADER.size:at + _LOCAL_HEADER.size + n]) != info.orig_filename.encode(encoding, "replace"):
        return used, None, "the local header names another file"
    raw = bytes(buf[data_at:data_end])
    if info.compress_type == zipfile.ZIP_STORED:
        data = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            d = zlib.decompressobj(-15)
            data = d.decompress(raw) + d.flush()
            if not d.eof:
                return used, None, "the deflate stream is incomplete"
        except zlib.error as e:
            return used, None, f"corrupt deflate data ({e})"
    else:
        raise DownloadError(f"{m.name}: compression method {info.compress_type} is not supported (stored or deflated only)")
    if len(data) != info.file_size:
        return used, None, f"{len(data)} bytes instead of {info.file_size}"
    crc = zlib.crc32(data)
    if crc != info.CRC:
        return used, None, f"CRC-32 {crc:08x} instead of {info.CRC:08x}"
    return used, data, None
