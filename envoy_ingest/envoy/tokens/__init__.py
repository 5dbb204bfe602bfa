"""Tokens for firmware >= 7: one JWT per gateway serial, kept usable.

Where a token comes from: pasted (``token`` / ``token_file``), the on-disk
cache (``<state>/tokens/<serial>.json``, mode 0600), or Enlighten
(``enlighten_username`` / ``enlighten_password``). Every client gets its token
from the :class:`TokenManager`, whichever the source.

- A token from the cache or pasted is checked with ``/auth/check_jwt`` the first
  time a client uses it; one fresh from Enlighten is trusted.
- Fetched tokens are renewed in the background (never in a poll's path) once
  the time left falls below ``min(30 days, lifetime / 10)``.
- On a 401 the client calls :meth:`TokenManager.unauthorized`: re-validate,
  refresh once if refused, retry once. A token fetched to replace a refused one
  that is refused too counts as a cloud failure (backoff): never a loop.
- Cloud failures back off exponentially with jitter up to 6 hours; the current
  token stays in use while valid. One refresh at a time per Enlighten account.
- Pasted tokens cannot be renewed: warnings at 30, 7 and 1 days before expiry.

The token, passwords and session ids never appear in logs, messages or reprs.

One job per module:

- ``claims.py``   what a JWT says (expiry, issue time, account type), read without verifying
- ``cache.py``    the 0600 on-disk cache, one file per gateway serial
- ``cloud.py``    the Enphase cloud: Enlighten login and the token request
- ``policy.py``   when to renew, retry, warn and wake: pure functions of the time
- ``state.py``    what the manager keeps per Enlighten account and per gateway serial
- ``pasted.py``   the pasted tokens and the warnings before they expire
- ``manager.py``  TokenManager: the token of each gateway, what clients call, and
  its background renewal loop
"""

from envoy_ingest.envoy.tokens.claims import DAY, TokenInfo, decode_token, duration_text
from envoy_ingest.envoy.tokens.manager import TokenManager
from envoy_ingest.envoy.tokens.policy import BACKOFF_CAP

__all__ = ["BACKOFF_CAP", "DAY", "TokenInfo", "TokenManager", "decode_token", "duration_text"]
