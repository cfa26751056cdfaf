"""The one HTTP client of both downloaders (whole archives and range reads of a subset).

A ``requests`` session whose adapter carries urllib3's :class:`~urllib3.util.Retry`: a failed
connection, a read that times out before the answer, and a 429/5xx answer (:data:`RETRY_STATUS`)
are retried inside urllib3, after ``Retry-After`` (seconds or an HTTP date) where the server
sends one, else after an exponential backoff (``backoff``, ``2 * backoff``, ...). What urllib3
cannot know is added here:

- **one budget of retries per fetch** (:class:`Attempts`): the retries of urllib3 (on every
  redirect hop) and the caller's own retries after a body cut short share it, so ``retries``
  bounds the attempts of a fetch (not ``retries`` squared);
- **bounded, counted, injectable waits**: no wait exceeds ``max_wait``; a server that asks for
  more is reported (:class:`DownloadError`) instead of waited for; every wait goes through
  ``sleep`` (tests pass one that does not sleep) and is added to ``waited_s``;
- **spacing**: requests, redirect hops and retries included, start at least ``min_interval``
  seconds apart (Zenodo allows about 60 a minute);
- **an overall deadline per request** (``deadline`` seconds from sending it to its last byte),
  not only the per-read ``timeout``: a server that trickles a body is cut off (:class:`BodyCut`,
  which the callers resume from);
- the final URL of a redirected request is remembered, so later requests for the same URL go
  straight to it (and back to the original URL when the remembered one answers 401/403/404/410);
- the answer is checked: with a ``Range``, only a 206 whose ``Content-Range`` starts (and ends)
  where asked passes (a 200 raises :class:`RangeNotSupported` before its body is read, unless
  ``whole_ok``); without one, only a 200.
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator

from ..core.errors import ConfigError, DownloadError

__all__ = ["RETRY_STATUS", "Attempts", "BodyCut", "HttpClient", "RangeMismatch", "RangeNotSupported",
           "parse_content_range", "retry_after_seconds", "transport_errors"]

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class RangeNotSupported(DownloadError):
    """The server answered a ``Range`` request with the whole file (200): a subset is impossible."""


class RangeMismatch(DownloadError):
    """416, or a ``Content-Range`` other than the one asked for (a resumed file is not a prefix of the server's)."""


class BodyCut(Exception):
    """The connection broke, closed early or ran past its deadline in the middle of a body: resume what is missing."""


class _WaitTooLong(Exception):
    """Raised inside urllib3's retry loop when ``Retry-After`` exceeds ``max_wait`` (turned into DownloadError)."""

    def __init__(self, seconds: float, status: int) -> None:
        super().__init__(seconds, status)
        self.seconds, self.status = seconds, status


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


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = _CONTENT_RANGE.match(value or "")
    if m is None:
        return None
    return int(m[1]), int(m[2]), (None if m[3] == "*" else int(m[3]))


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a body read raises when the connection breaks (requests' and urllib3's), and :class:`BodyCut`."""
    import requests
    import urllib3

    return (BodyCut, requests.exceptions.ChunkedEncodingError, requests.ConnectionError, requests.Timeout,
            urllib3.exceptions.HTTPError)


@dataclass
class Attempts:
    """The retries one fetch may still make: ``limit`` in all, ``used`` so far (urllib3's and the caller's)."""

    limit: int
    used: int = 0

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def made(self) -> int:
        """Attempts made so far (the first one plus the retries)."""
        return self.used + 1


def _retry_class():
    from urllib3.util.retry import Retry

    class _Retry(Retry):
        """urllib3's Retry whose waits go through the client (bounded by ``max_wait``, counted, injectable)."""

        client: HttpClient | None = None

        def new(self, **kw):
            out = super().new(**kw)
            out.client = self.client
            return out

        def sleep(self, response=None) -> None:  # called once before every retry
            self.client._before_retry(len(self.history), response)

    return _Retry


class HttpClient:
    """A ``requests`` session with urllib3's Retry, spacing, a deadline and checked answers (module docstring).

    ``timeout``: seconds for the connection and for each read; ``retries``: retries of one fetch
    (0 or more); ``backoff``: the first wait without ``Retry-After`` (doubled each time);
    ``max_wait``: the longest wait; ``min_interval``: spacing of requests; ``deadline``: seconds
    one request may take in all (None: no limit); ``sleep``/``clock``: injectable for tests.
    ``requests``, ``bytes_received`` and ``waited_s`` count what the client did.
    """

    def __init__(self, *, timeout: float = 60.0, retries: int = 5, min_interval: float = 0.0, backoff: float = 2.0,
                 max_wait: float = 120.0, deadline: float | None = None, user_agent: str = "asdlib",
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be a whole number, 0 or more (0: no retry), got {retries!r}")
        if timeout <= 0 or (deadline is not None and deadline <= 0):
            raise ConfigError(f"timeout and deadline must be positive seconds, got {timeout!r} and {deadline!r}")
        self.timeout, self.retries, self.min_interval = timeout, retries, min_interval
        self.backoff, self.max_wait, self.deadline = backoff, max_wait, deadline
        self._sleep_fn = sleep or time.sleep
        self._clock = clock or time.monotonic
        self.requests = 0  # HTTP requests sent: redirect hops and retries included
        self.bytes_received = 0
        self.waited_s = 0.0  # time slept for Retry-After, backoff and spacing
        self._resolved: dict[str, str] = {}  # original URL -> where its redirects led
        self._next_time = 0.0
        self._sent_at = 0.0
        self._attempts = Attempts(retries)
        client = self

        class _Adapter(HTTPAdapter):
            def send(self, request, **kwargs):  # every request and redirect hop: a fresh Retry on what is left
                retry = _retry_class()(
                    total=client._attempts.left, connect=None, read=None, redirect=0, status=None,
                    status_forcelist=RETRY_STATUS, allowed_methods=frozenset({"GET", "HEAD"}), backoff_factor=backoff,
                    respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False)
                retry.client = client
                self.max_retries = retry
                client._pace()
                return super().send(request, **kwargs)

        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.max_redirects = 10
        adapter = _Adapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # -- life cycle
    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- waiting
    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep_fn(seconds)
            self.waited_s += seconds

    def backoff_wait(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1, 2, ...) when the server names none."""
        return min(self.max_wait, self.backoff * 2 ** max(attempt - 1, 0))

    def _pace(self) -> None:
        self.sleep(self._next_time - self._clock())
        self._sent_at = self._clock()
        self._next_time = self._sent_at + self.min_interval
        self.requests += 1

    def _before_retry(self, n_failed: int, response) -> None:
        """urllib3 retries (a 429/5xx answer, no connection): wait, then count the retry in the fetch's budget."""
        asked = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
        if asked is not None and asked > self.max_wait:
            raise _WaitTooLong(asked, response.status)
        self._attempts.used += 1
        self.sleep(self.backoff_wait(n_failed) if asked is None else asked)
        self._pace()  # the retry is a request: spaced and counted like the others

    def retry_after_cut(self, attempts: Attempts, url: str, what: str, error: BaseException) -> None:
        """A body was cut short: spend one retry of ``attempts`` and wait, or raise DownloadError."""
        if attempts.left <= 0:
            raise DownloadError(f"{url}: {what} failed after {attempts.made} attempt(s): {error}") from error
        attempts.used += 1
        self.sleep(self.backoff_wait(attempts.used))

    # -- requests
    def attempts(self) -> Attempts:
        """A fresh budget for one fetch: ``retries`` retries in all."""
        return Attempts(self.retries)

    @contextlib.contextmanager
    def open(self, url: str, byte_range: str | None = None, expect: tuple[int, int | None] | None = None, *,
             whole_ok: bool = False, attempts: Attempts | None = None) -> Iterator:
        """A streamed, checked response for ``url`` (with ``Range: <byte_range>``); closed on exit.

        With a range, a 206 passes when its ``Content-Range`` starts at ``expect[0]`` (and ends
        at ``expect[1]`` unless that is None); a 200 raises :class:`RangeNotSupported` before its
        body is read, or passes when ``whole_ok``; a 416 or another range raises
        :class:`RangeMismatch`. Without a range, only 200 passes. ``attempts`` is the fetch's
        budget of retries (default: a fresh one).
        """
        import requests

        headers = {"Accept-Encoding": "identity"}
        if byte_range:
            headers["Range"] = byte_range
        attempts = attempts if attempts is not None else self.attempts()
        while True:
            target = self._resolved.get(url, url)
            self._attempts = attempts
            try:
                resp = self.session.get(target, headers=headers, stream=True, timeout=self.timeout)
            except _WaitTooLong as e:
                raise DownloadError(
                    f"{url}: HTTP {e.status}, the server asks to wait {e.seconds:.0f} s (Retry-After), more than the "
                    f"{self.max_wait:.0f} s allowed; run the command again later (what is verified is kept)") from None
            except requests.exceptions.RetryError as e:
                raise DownloadError(f"{url}: gave up after {attempts.made} attempt(s): {e}") from e
            except (requests.ConnectionError, requests.Timeout) as e:
                raise DownloadError(f"{url}: no answer after {attempts.made} attempt(s): {e}") from e
            if resp.history:
                self._resolved[url] = resp.url
            code = resp.status_code
            if code in (401, 403, 404, 410) and target != url:
                resp.close()  # a remembered redirect target that expired: follow the original URL again
                self._resolved.pop(url, None)
                continue
            try:
                self._check(resp, url, byte_range, expect, whole_ok, attempts)
            except BaseException:
                resp.close()  # closes the socket: a refused body is not read
                raise
            try:
                yield resp
            finally:
                resp.close()
            return

    def _check(self, resp, url: str, byte_range: str | None, expect, whole_ok: bool, attempts: Attempts) -> None:
        code = resp.status_code
        if code in RETRY_STATUS:
            raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''} after {attempts.made} attempt(s); "
                                "the server is busy or rate-limiting: run the command again later")
        if byte_range and code == 416:
            raise RangeMismatch(f"{url}: HTTP 416, the server cannot send {byte_range}")
        if byte_range and code == 200 and not whole_ok:
            length = resp.headers.get("Content-Length")
            size = f" ({int(length):,} bytes)" if length and length.isdigit() else ""
            raise RangeNotSupported(
                f"{url}: the server ignored the Range request and started sending the whole file{size} "
                "(HTTP 200 instead of 206 Partial Content). A subset cannot be read from it without "
                "downloading entire archives, so the connection was closed and nothing was written. Use a "
                "server that honours Range (zenodo.org does), or download whole archives with "
                "`asdlib download` without --subset."
            )
        wanted = (200, 206) if (byte_range and whole_ok) else (206,) if byte_range else (200,)
        if code not in wanted:
            raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''}".rstrip()
                                + (f" for Range {byte_range}" if byte_range else ""))
        if byte_range and code == 206:
            got = parse_content_range(resp.headers.get("Content-Range"))
            if got is None or (expect is not None and (got[0] != expect[0] or expect[1] not in (None, got[1]))):
                raise RangeMismatch(f"{url}: asked for {byte_range}, the server sent "
                                    f"Content-Range {resp.headers.get('Content-Range')!r}")

    def body(self, resp, chunk: int = CHUNK) -> Iterator[bytes]:
        """The body as it arrives, counted; :class:`BodyCut` past the request's deadline.

        ``read1`` hands over every byte received before a connection drops (``iter_content``
        would lose the chunk in progress).
        """
        deadline = None if self.deadline is None else self._sent_at + self.deadline
        read1 = getattr(resp.raw, "read1", None)
        chunks = resp.iter_content(chunk) if read1 is None else iter(lambda: read1(chunk), b"")  # urllib3 < 2.2
        for data in chunks:
            self.bytes_received += len(data)
            yield data
            if deadline is not None and self._clock() > deadline:
                raise BodyCut(f"the answer took more than the {self.deadline:g}-s deadline of a request")

    def read_range(self, url: str, start: int | None, end: int | None, suffix: int | None = None) -> tuple[int, bytes, int]:
        """Bytes ``[start, end]`` (or the last ``suffix`` bytes) as ``(first offset, data, file size)``.

        A body cut short is fetched again, within the fetch's budget of ``retries``.
        """
        rng = f"bytes=-{suffix}" if suffix is not None else f"bytes={start}-{end}"
        expect = None if suffix is not None else (start, end)
        attempts = self.attempts()
        while True:
            try:
                with self.open(url, rng, expect, attempts=attempts) as resp:
                    first, last, total = parse_content_range(resp.headers["Content-Range"])
                    data = b"".join(self.body(resp))
                if len(data) != last - first + 1:
                    raise BodyCut(f"got {len(data)} of {last - first + 1} bytes")
                if total is None:
                    raise DownloadError(f"{url}: the server does not say how large the file is (Content-Range */)")
                return first, data, total
            except transport_errors() as e:
                self.retry_after_cut(attempts, url, f"reading {rng}", e)

    def read_whole(self, url: str, max_bytes: int) -> bytes:
        """A small file, whole (no Range); refused when larger than ``max_bytes``."""
        attempts = self.attempts()
        while True:
            try:
                with self.open(url, attempts=attempts) as resp:
                    length = resp.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > max_bytes:
                        raise DownloadError(f"{url}: {int(length):,} bytes, expected a small file (at most {max_bytes:,})")
                    parts, n = [], 0
                    for chunk in self.body(resp):
                        parts.append(chunk)
                        n += len(chunk)
                        if n > max_bytes:
                            raise DownloadError(f"{url}: more than {max_bytes:,} bytes, expected a small file")
                data = b"".join(parts)
                if length and length.isdigit() and len(data) != int(length):
                    raise BodyCut(f"got {len(data)} of {length} bytes")
                return data
            except transport_errors() as e:
                self.retry_after_cut(attempts, url, "the download", e)
