"""A Connect-protocol client (connect-python) that carries the bearer token."""

from __future__ import annotations

from typing import Callable, Optional

from connectrpc.request import RequestContext

from iotplatform._session import Session, _SyncSession

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


class ConnectClient(_SyncSession):
    """A Connect client of one platform over HTTP (base_url like "http://localhost:8080").

    core, ingest and query are the generated connect-python clients (snake_case
    methods, e.g. core.create_device); errors are connectrpc.errors.ConnectError.
    The session (sign_in, refresh, sign_out, session) works like iotplatform.Client's.
    """

    def __init__(self, base_url: str, token: Optional[str] = None, *, session: Optional[Session] = None):
        self.base_url = base_url.rstrip("/")
        self._init_session(token, session)
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

    def _refresh_rpc(self, refresh_token: str) -> core_pb2.RefreshTokenResponse:
        return self.core.refresh_token(core_pb2.RefreshTokenRequest(refresh_token=refresh_token))

    def _sign_out_rpc(self, refresh_token: str) -> None:
        self.core.sign_out(core_pb2.SignOutRequest(refresh_token=refresh_token))

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
