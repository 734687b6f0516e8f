"""A signed-in user session: the short-lived user token, its one-use refresh
token and the token's expiry, shared by the sync and asyncio clients."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Dict, NamedTuple, Optional

#: How long before its expiry a user token is renewed, in seconds (at most
#: half the token's lifetime, for tokens that live less than a minute).
REFRESH_MARGIN = 30.0

#: The public session procedures: sent without the user token, they never
#: trigger a renewal.
SESSION_METHODS = frozenset(
    {
        "/iot.core.v1.CoreService/SignIn",
        "/iot.core.v1.CoreService/RefreshToken",
        "/iot.core.v1.CoreService/SignOut",
    }
)


class Session(NamedTuple):
    """A saved session: pass it back as ``session=`` to resume.

    ``expires`` is an aware UTC datetime (None: renew at the first call).
    ``to_dict``/``from_dict`` turn it into JSON-friendly values.
    """

    token: str
    refresh_token: str
    expires: Optional[dt.datetime]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "token": self.token,
            "refresh_token": self.refresh_token,
            "expires": self.expires.isoformat() if self.expires else None,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Session":
        exp = d.get("expires")
        if isinstance(exp, str):
            exp = dt.datetime.fromisoformat(exp)
        return cls(d["token"], d["refresh_token"], exp)


class NoSessionError(RuntimeError):
    """refresh() without a refresh token: sign in (again) first."""


class _State(NamedTuple):
    """What a client holds, replaced as a whole (reads need no lock)."""

    token: Optional[str]
    refresh: Optional[str]
    expires: Optional[float]  # epoch seconds; None with a refresh token: renew now
    generation: int  # bumped by every renewal attempt
    margin: float = REFRESH_MARGIN  # renew this many seconds before expires

    @classmethod
    def initial(cls, token: Optional[str], session: Optional[Session]) -> "_State":
        if session is None:
            return cls(token, None, None, 0)
        exp = session.expires.timestamp() if session.expires else None
        return cls(session.token, session.refresh_token or None, exp, 0)

    def due(self) -> bool:
        return bool(self.refresh) and (self.expires is None or self.expires - time.time() < self.margin)

    def session(self) -> Optional[Session]:
        if not self.token:
            return None
        exp = dt.datetime.fromtimestamp(self.expires, dt.timezone.utc) if self.expires is not None else None
        return Session(self.token, self.refresh or "", exp)

    def signed_in(self, resp: Any) -> "_State":
        """The state after a SignIn or RefreshToken response."""
        exp = resp.expire_time.seconds + resp.expire_time.nanos / 1e9 if resp.HasField("expire_time") else None
        margin = REFRESH_MARGIN if exp is None else min(REFRESH_MARGIN, max(exp - time.time(), 0.0) / 2)
        return _State(resp.token, resp.refresh_token or None, exp, self.generation + 1, margin)

    def ended(self) -> "_State":
        """The state after a failed renewal: the refresh token is used up or revoked."""
        return _State(self.token, None, None, self.generation + 1)


class _SyncSession:
    """The session half of the sync clients (gRPC ``Client`` and Connect
    ``ConnectClient``): renewal before calls, refresh, sign-out. A client
    calls ``_init_session`` and implements ``_refresh_rpc``/``_sign_out_rpc``
    with its own stubs."""

    _state: _State
    _renewing: threading.Lock

    def _init_session(self, token: Optional[str], session: Optional[Session]) -> None:
        self._state = _State.initial(token, session)
        self._renewing = threading.Lock()

    def _refresh_rpc(self, refresh_token: str) -> Any:  # pragma: no cover - implemented by clients
        raise NotImplementedError

    def _sign_out_rpc(self, refresh_token: str) -> None:  # pragma: no cover - implemented by clients
        raise NotImplementedError

    @property
    def token(self) -> Optional[str]:
        """The token sent with every call (user, device or consumer)."""
        return self._state.token

    @token.setter
    def token(self, token: Optional[str]) -> None:
        self._state = self._state._replace(token=token)

    @property
    def session(self) -> Optional[Session]:
        """The signed-in session (token, refresh token, expiry) to save and
        resume with ``session=``; None without a token."""
        return self._state.session()

    def refresh(self) -> None:
        """Trades the refresh token for a new user token and refresh token.

        Calls do it on their own when the token is about to expire. A failure
        means the session is over (the refresh token is forgotten): sign in
        again. Raises NoSessionError without a refresh token.
        """
        with self._renewing:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        state = self._state
        if not state.refresh:
            raise NoSessionError("no refresh token (sign in first)")
        try:
            resp = self._refresh_rpc(state.refresh)
        except BaseException:
            self._state = self._state.ended()
            raise
        self._state = self._state.signed_in(resp)

    def _token_for(self, method: str) -> Optional[str]:
        if method in SESSION_METHODS:
            return None
        state = self._state
        if state.due():
            with self._renewing:
                if self._state.generation == state.generation:  # nobody renewed meanwhile
                    try:
                        self._refresh_locked()
                    except Exception:
                        pass  # the call itself then fails unauthenticated
        return self._state.token

    def sign_out(self) -> None:
        """Revokes the refresh token and forgets the session."""
        with self._renewing:
            refresh = self._state.refresh
            self._state = _State(None, None, None, self._state.generation + 1)
        if refresh:
            self._sign_out_rpc(refresh)
