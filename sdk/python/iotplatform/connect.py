"""A Connect-protocol client (connect-python) that carries the bearer token."""

from __future__ import annotations

import threading
from typing import Callable, Optional

from connectrpc.request import RequestContext

from iotplatform._session import SESSION_METHODS, NoSessionError, Session, _State

from iotplatform.gen.iot.core.v1 import core_pb2
from iotplatform.gen.iot.core.v1.core_connect import CoreServiceClientSync
from iotplatform.gen.iot.ingest.v1.ingest_connect import IngestServiceClientSync
from iotplatform.gen.iot.query.v1.query_connect import QueryServiceClientSync
from iotplatform.gen.iot.command.v1.command_connect import CommandServiceClientSync


class _Bearer:
    """Sets `Authorization: Bearer <token>` on every call, read at call time
    (token(method) renews it first when due; None for session procedures)."""

    def __init__(self, token: Callable[[str], Optional[str]]):
        self._token = token

    def on_start_sync(self, ctx: RequestContext) -> None:
        m = ctx.method()
        token = self._token(f"/{m.service_name}/{m.name}")
        if token:
            ctx.request_headers()["authorization"] = f"Bearer {token}"

    def on_end_sync(self, token: None, ctx: RequestContext, error: Optional[Exception]) -> None:
        return None


class ConnectClient:
    """A Connect client of one platform over HTTP (base_url like "http://localhost:8080").

    core, ingest and query are the generated connect-python clients (snake_case
    methods, e.g. core.create_device); errors are connectrpc.errors.ConnectError.
    The session (sign_in, refresh, sign_out, session) works like iotplatform.Client's.
    """

    def __init__(self, base_url: str, token: Optional[str] = None, *, session: Optional[Session] = None):
        self.base_url = base_url.rstrip("/")
        self._state = _State.initial(token, session)
        self._renewing = threading.Lock()
        interceptors = [_Bearer(self._token_for)]
        self.core = CoreServiceClientSync(self.base_url, interceptors=interceptors)
        self.ingest = IngestServiceClientSync(self.base_url, interceptors=interceptors)
        self.query = QueryServiceClientSync(self.base_url, interceptors=interceptors)
        self.command = CommandServiceClientSync(self.base_url, interceptors=interceptors)

    def sign_in(self, username: str, password: str) -> core_pb2.SignInResponse:
        """Signs in as a user and keeps the token for later calls."""
        resp = self.core.sign_in(core_pb2.SignInRequest(username=username, password=password))
        self._state = self._state.signed_in(resp)
        return resp

    @property
    def token(self) -> Optional[str]:
        """The token sent with every call (user, device or consumer)."""
        return self._state.token

    @token.setter
    def token(self, token: Optional[str]) -> None:
        self._state = self._state._replace(token=token)

    @property
    def session(self) -> Optional[Session]:
        """The signed-in session to save and resume with ``session=``."""
        return self._state.session()

    def refresh(self) -> None:
        """Renews the user token with the refresh token (see Client.refresh)."""
        with self._renewing:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        state = self._state
        if not state.refresh:
            raise NoSessionError("no refresh token (sign in first)")
        try:
            resp = self.core.refresh_token(core_pb2.RefreshTokenRequest(refresh_token=state.refresh))
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
            self.core.sign_out(core_pb2.SignOutRequest(refresh_token=refresh))

    def device_client(self, device_id: int) -> "ConnectClient":
        """Returns a client acting as the device, with its key fetched by this client."""
        key = self.core.get_device_key(core_pb2.GetDeviceKeyRequest(id=device_id))
        return ConnectClient(self.base_url, key.token)

    def close(self) -> None:
        """Closes the clients."""
        for c in (self.core, self.ingest, self.query):
            c.close()

    def __enter__(self) -> "ConnectClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
