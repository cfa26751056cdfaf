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
3. the body is streamed and cut into members as it arrives: each one must lie inside its span
   (its local header, name, extra field and data end before the next entry), is inflated
   (stored or deflated) to at most its stated size plus one byte (a member whose directory entry
   understates its size is refused after that byte, not after inflating all of it), its size and
   CRC-32 compared with the central directory, and handed over at once, so a connection dropped
   in the middle of a request loses only the member in flight; the members not yet received are
   planned again and fetched with a new request.

The HTTP side is :class:`asdlib.data.httpclient.HttpClient`, shared with the whole-archive
downloader: urllib3's Retry (429/5xx after ``Retry-After`` or a backoff, both bounded by
``max_wait``), requests spaced by ``min_interval`` seconds (Zenodo allows about 60 a minute),
an overall deadline per request, and one budget of retries per fetch, which a cut body and a
busy server share (and which a member received renews). The server must answer ``Range`` with
206 Partial Content; one that answers 200 (the whole archive) is refused at once: the response
is closed before its body is read and :class:`RangeNotSupported` says why.
"""
from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence

from ..core.errors import DownloadError
from .httpclient import (
    Attempts,
    BodyCut,
    HttpClient,
    RangeNotSupported,
    parse_content_range,
    retry_after_seconds,
    transport_errors,
)

__all__ = ["RangeClient", "RemoteZip", "Member", "RangeNotSupported", "coalesce", "retry_after_seconds"]

RangeClient = HttpClient  # the name this module's users knew; one client serves both downloaders
DEFAULT_TAIL_BYTES = 1 << 20
DEFAULT_MAX_GAP = 1 << 20  # about three clips of unwanted bytes may be read to save a request
DEFAULT_MAX_REQUEST = 64 << 20
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, csize, usize, n, m
_LOCAL_SIGNATURE = b"PK\x03\x04"


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
        seen: dict[int, str] = {}
        for i in infos:  # each member's span must be its own and lie before the central directory
            if i.header_offset >= start_dir or i.header_offset in seen:
                why = ("after the central directory" if i.header_offset >= start_dir
                       else f"at the same offset as {seen[i.header_offset]!r}")
                raise DownloadError(f"{url}: member {i.filename!r} starts at byte {i.header_offset:,}, {why}; "
                                    "the archive is malformed")
            seen[i.header_offset] = i.filename
        offsets = sorted(set(seen) | {start_dir})
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
        """Yield ``(member, uncompressed bytes)`` for each member, each checked against its span, size and CRC-32.

        Coalesced requests (see :func:`coalesce`). A member that fails its check is discarded
        and fetched again, at most ``crc_retries`` times, then :class:`DownloadError`. A
        connection cut mid-body (or a request past its deadline) is retried from the first
        member not yet received. Cuts and busy answers share one budget of ``client.retries``
        retries, renewed whenever a member arrives; spent, :class:`DownloadError`.
        ``progress`` (a tqdm bar or None) is advanced by the bytes received.
        """
        remaining = {m.name: m for m in members}
        failures: dict[str, int] = {}
        attempts = self.client.attempts()
        self.member_requests = 0
        while remaining:
            for group in coalesce(list(remaining.values()), max_gap, max_request):
                try:
                    for m, data, problem in self._stream_group(group, progress, attempts):
                        if problem is None:
                            attempts.used = 0  # progress: the budget is renewed
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
                except BodyCut as e:
                    try:
                        self.client.retry_after_cut(attempts, self.url, "reading members", e)
                    except DownloadError as err:
                        raise DownloadError(f"{err}; verified members are kept, run the command again to resume") from e
                    break  # plan the remaining members again

    def _stream_group(self, group: list[Member], progress,
                      attempts: Attempts) -> Iterator[tuple[Member, bytes | None, str | None]]:
        start, end = group[0].start, group[-1].end
        buf, base, idx = bytearray(), start, 0  # base: archive offset of buf[0]
        self.member_requests += 1
        try:
            with self.client.open(self.url, f"bytes={start}-{end - 1}", (start, end - 1), attempts=attempts) as resp:
                total = parse_content_range(resp.headers.get("Content-Range"))[2]
                if total is not None and total != self.size:
                    raise DownloadError(f"{self.url}: the archive is now {total:,} bytes, it was {self.size:,} when its "
                                        "directory was read (changed on the server?); run the command again")
                for chunk in self.client.body(resp):
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
        except BodyCut:
            raise
        except transport_errors() as e:
            raise BodyCut(str(e)) from e
        if idx < len(group):
            raise BodyCut(f"the body ended {len(group) - idx} member(s) short")


def _inflate(raw: bytes, size: int) -> tuple[bytes | None, str | None]:
    """Raw deflate ``raw`` into at most ``size + 1`` bytes: ``(data, None)`` or ``(None, problem)``."""
    d = zlib.decompressobj(-15)
    try:
        data = d.decompress(raw, size + 1)
    except zlib.error as e:
        return None, f"corrupt deflate data ({e})"
    if len(data) > size or d.unconsumed_tail:
        return None, f"it inflates to more than the {size:,} bytes its directory entry states"
    if not d.eof:
        return None, "the deflate stream is incomplete"
    return data, None


def _take_member(m: Member, buf: bytearray, at: int) -> tuple[int, bytes | None, str | None] | None:
    """Decode member ``m`` whose local header starts at ``buf[at]``.

    Returns None while ``buf`` does not hold all of it yet, else ``(bytes used from at,
    data or None, problem or None)``. Nothing outside ``m``'s span ``[start, end)`` is read.
    """
    span = m.end - m.start
    if len(buf) < at + _LOCAL_HEADER.size:
        return None
    sig, _, flags, _, _, _, _, _, _, n, extra = _LOCAL_HEADER.unpack_from(buf, at)
    if sig != _LOCAL_SIGNATURE:
        return (span, None, "no local file header where the central directory puts it") if len(buf) >= at + span else None
    data_at = at + _LOCAL_HEADER.size + n + extra
    data_end = data_at + m.compressed_size
    if data_end - at > span:
        why = (f"its local header and data would end at byte {m.start + data_end - at:,}, past the "
               f"{span:,}-byte span that the central directory leaves it (up to byte {m.end:,})")
        return (span, None, why) if len(buf) >= at + span else None
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
        data, problem = _inflate(raw, info.file_size)
        if problem is not None:
            return used, None, problem
    else:
        raise DownloadError(f"{m.name}: compression method {info.compress_type} is not supported (stored or deflated only)")
    if len(data) != info.file_size:
        return used, None, f"{len(data)} bytes instead of {info.file_size}"
    crc = zlib.crc32(data)
    if crc != info.CRC:
        return used, None, f"CRC-32 {crc:08x} instead of {info.CRC:08x}"
    return used, data, None
