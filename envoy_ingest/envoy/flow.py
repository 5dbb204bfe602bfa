"""Requests with an auth flow (digest, below firmware 7) on a gateway's connection.

No ``httpx.AsyncClient``: :func:`exchange` drives httpx's auth flow by hand,
request by request. Once the gateway has challenged, a digest GET needs no
flow: its ``Authorization`` (httpx's own, see
:meth:`~envoy_ingest.envoy.auth.GatewayDigestAuth.authorization`) goes in a
prepared request head and the answer is a
:class:`~envoy_ingest.envoy.http11.Reply` (:func:`signed_get`); only a new
challenge (a stale nonce, a rebooted gateway) goes back to httpx's flow.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from envoy_ingest.envoy.http11 import GatewayConnection, Reply, Timeouts
from envoy_ingest.origin import Origin


async def exchange(
    connection: httpx.AsyncBaseTransport,
    request: httpx.Request,
    auth: httpx.Auth | None,
    answered: httpx.Response | None = None,
) -> httpx.Response:
    """One request, and the ones its auth flow asks for (digest: after a 401).

    ``answered``: the flow's first request was sent already (as prepared bytes)
    and this is its answer; the flow goes on from there."""
    if auth is None:
        return await connection.handle_async_request(request)
    flow = auth.async_auth_flow(request)
    try:
        request = await flow.__anext__()
        response = answered
        while True:
            if response is None:
                response = await connection.handle_async_request(request)
                if auth.requires_response_body:
                    await response.aread()
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response
            await response.aclose()
            response = None
    finally:
        await flow.aclose()


def challenges_digest(reply: Reply) -> bool:
    """A 401 with a ``WWW-Authenticate: Digest`` challenge (httpx's test for one)."""
    return reply.status_code == 401 and any(
        name.lower() == b"www-authenticate" and value[:7].lower() == b"digest "
        for name, value in reply.raw_headers
    )


async def signed_get(
    conn: GatewayConnection,
    origin: Origin,
    head: bytes,
    timeouts: Timeouts,
    auth: httpx.Auth,
    request: Callable[[], httpx.Request],
) -> Reply | httpx.Response:
    """Send ``head``, a GET signed for the challenge the gateway gave before, as
    httpx's flow would have sent it. A new challenge in answer goes to that flow
    (``request()``: the same GET as an httpx request), which reads it, signs the
    request again and sends it: exactly what httpx does after such a 401."""
    reply = await conn.request(origin, head, timeouts)
    if not challenges_digest(reply):
        return reply
    again = request()
    response = await exchange(conn, again, auth, answered=reply.to_httpx(again))
    await response.aread()
    return response
