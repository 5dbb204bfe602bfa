"""The two answer readers bench_requests.py compares with the worker's own
(:func:`envoy_ingest.envoy.wire.read_answer`, llhttp through httptools), on
the same sockets and behind the same interface:

- ``hand``: the hand-written reader the worker had before (0.1.0), kept here
  verbatim as the baseline: it splits heads and decodes bodies itself;
- ``h11``: the pure-Python parser httpx's own stack uses (installed with httpx).

Kept for the comparison only; nothing outside bench/ uses them.
"""

from __future__ import annotations

import h11
import httpx

from envoy_ingest.envoy.wire import MAX_BODY, MAX_HEAD, Answer, Headers, Stream, find_header

# --- h11 -------------------------------------------------------------------------------

# h11 reads an answer only after it has seen the request: these stand for the
# prepared head already sent (h11 needs only its method).
_H11_REQUESTS = {
    method: h11.Request(method=method, target="/", headers=[("Host", "gateway")])
    for method in ("GET", "HEAD")
}


async def read_answer_h11(stream: Stream, method: str, timeout: float | None) -> Answer:  # noqa: ASYNC109
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(_H11_REQUESTS.get(method, _H11_REQUESTS["GET"]))
    conn.send(h11.EndOfMessage())
    response: h11.Response | None = None
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(f"the answer is not valid HTTP/1.1 ({exc})") from None
        if event is h11.NEED_DATA:
            if stream.buffer:
                conn.receive_data(bytes(stream.buffer))
                stream.buffer.clear()
            elif stream.eof:
                if stream.error is not None or response is None:
                    _raise_closed(stream)
                conn.receive_data(b"")  # the end: h11 says whether the body may end here
            elif not await stream.more(timeout):
                raise httpx.ReadTimeout("timed out")
            continue
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            parts.append(event.data)
            size += len(event.data)
            if size > MAX_BODY:
                raise httpx.RemoteProtocolError("the answer is too large")
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            _raise_closed(stream)
        # InformationalResponse (100 Continue): the real one follows
    assert response is not None
    headers = list(response.headers.raw_items())
    trailing, _ = conn.trailing_data
    if trailing.strip(b"\r\n"):
        raise httpx.RemoteProtocolError("bytes after the end of the answer")
    both = find_header(headers, b"transfer-encoding") and find_header(headers, b"content-length")
    keep = conn.their_state is h11.DONE and not both
    return response.status_code, bytes(response.reason), headers, b"".join(parts), keep


# --- hand: the reader of 0.1.0, as it was --------------------------------------------------


async def read_answer_hand(stream: Stream, method: str, timeout: float | None) -> Answer:  # noqa: ASYNC109
    status, reason, headers, keep = await read_head(stream, timeout)
    body = await read_body(stream, method, status, headers, timeout)
    return status, reason, headers, body, keep and not stream.buffer and not stream.eof


async def _wait(stream: Stream, timeout: float | None) -> None:  # noqa: ASYNC109
    """More bytes, or an exception saying why there will be none."""
    if stream.eof:
        _raise_closed(stream)
    if not await stream.more(timeout):
        raise httpx.ReadTimeout("timed out")
    if stream.eof and not stream.buffer:
        _raise_closed(stream)


def _raise_closed(stream: Stream) -> None:
    if stream.error is not None:
        raise httpx.ReadError(str(stream.error) or type(stream.error).__name__)
    what = "a complete response" if stream.answered else "a response"
    raise httpx.RemoteProtocolError(f"Server disconnected without sending {what}.")


async def read_head(
    stream: Stream,
    timeout: float | None,  # noqa: ASYNC109
) -> tuple[int, bytes, Headers, bool]:
    """Status, reason, headers and whether the connection may be kept."""
    while True:
        head = await _read_until(stream, b"\r\n\r\n", timeout, "the answer's head")
        status_line, *header_lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(code)
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the real one follows
        headers: Headers = []
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line: {line[:60]!r}")
            headers.append((name, value.strip()))
        connection = find_header(headers, b"connection").lower()
        # HTTP/1.1 keeps the connection unless told not to; 1.0 only when told to.
        keep = b"keep-alive" in connection if version == b"HTTP/1.0" else b"close" not in connection
        return status, reason, headers, keep


async def read_body(
    stream: Stream,
    method: str,
    status: int,
    headers: Headers,
    timeout: float | None,  # noqa: ASYNC109
) -> bytes:
    if method == "HEAD" or status in (204, 304):
        return b""
    if b"chunked" in find_header(headers, b"transfer-encoding").lower():
        return await _read_chunked(stream, timeout)
    length = find_header(headers, b"content-length")
    if length:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"bad Content-Length {length!r}")
        return await _read_exactly(stream, int(length), timeout)
    # Neither: the body ends when the gateway closes the connection.
    while not stream.eof:
        if len(stream.buffer) > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large")
        if not await stream.more(timeout):
            raise httpx.ReadTimeout("timed out")
    if stream.error is not None:
        _raise_closed(stream)
    body = bytes(stream.buffer)
    stream.buffer.clear()
    return body


async def _read_exactly(stream: Stream, n: int, timeout: float | None) -> bytes:  # noqa: ASYNC109
    if n > MAX_BODY:
        raise httpx.RemoteProtocolError("the answer is too large")
    while len(stream.buffer) < n:
        await _wait(stream, timeout)
    body = bytes(stream.buffer[:n])
    del stream.buffer[:n]
    return body


async def _read_until(
    stream: Stream,
    end_mark: bytes,
    timeout: float | None,  # noqa: ASYNC109
    what: str,
) -> bytes:
    """The bytes before ``end_mark`` (taken off the buffer with it); at most MAX_HEAD."""
    end = stream.buffer.find(end_mark)
    while end < 0:
        if len(stream.buffer) > MAX_HEAD:
            raise httpx.RemoteProtocolError(f"{what} is too large")
        await _wait(stream, timeout)
        end = stream.buffer.find(end_mark)
    data = bytes(stream.buffer[:end])
    del stream.buffer[: end + len(end_mark)]
    return data


async def _read_line(stream: Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
    return await _read_until(stream, b"\r\n", timeout, "a chunk header")


async def _read_chunked(stream: Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = (await _read_line(stream, timeout)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await _read_line(stream, timeout):  # trailers, then a blank line
                pass
            return b"".join(parts)
        total += size
        parts.append(await _read_exactly(stream, size, timeout))
        if total > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large")
        if await _read_line(stream, timeout):
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")
