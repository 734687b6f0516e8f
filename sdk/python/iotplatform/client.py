"""A thin client over the generated gRPC stubs that carries the bearer token."""

from __future__ import annotations

from typing import Any, Callable, Optional

import grpc

from iotplatform._session import Session, _SyncSession

from iotplatform.gen.iot.core.v1 import core_pb2, core_pb2_grpc
from iotplatform.gen.iot.ingest.v1 import ingest_pb2_grpc
from iotplatform.gen.iot.query.v1 import query_pb2_grpc
from iotplatform.gen.iot.command.v1 import command_pb2_grpc
from iotplatform.gen.iot.rules.v1 import rules_pb2_grpc


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call, read at call time.

    token(method) returns the token for a call (renewing it first when due);
    None for the session procedures.
    """

    def __init__(self, token: Callable[[str], Optional[str]]):
        self._token = token

    def _details(self, details: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        token = self._token(method)
        if not token:
            return details
        metadata = list(details.metadata or [])
        metadata.append(("authorization", f"Bearer {token}"))
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def _channel(target: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    if target.startswith("https://"):
        return grpc.secure_channel(
            target[len("https://"):].rstrip("/"),
            credentials or grpc.ssl_channel_credentials(),
        )
    if target.startswith("http://"):
        target = target[len("http://"):].rstrip("/")
    if credentials is not None:
        return grpc.secure_channel(target, credentials)
    return grpc.insecure_channel(target)


class Client(_SyncSession):
    """A gRPC client of one platform.

    target is host:port of the API (e.g. "localhost:8080"); an http:// prefix
    is dropped, https:// uses TLS. core, ingest and query are the generated
    stubs; every call carries the current token as `authorization` metadata.

    After sign_in the client keeps the refresh token and renews the
    short-lived user token before a call when it expires within 30 s (one
    renewal at a time, shared by concurrent calls); `session` saves a session
    and `Client(target, session=saved)` resumes it.
    """

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        session: Optional[Session] = None,
    ):
        self.target = target
        self._init_session(token, session)
        self._credentials = credentials
        self._raw = _channel(target, credentials)
        channel = grpc.intercept_channel(self._raw, _Bearer(self._token_for))
        self.core = core_pb2_grpc.CoreServiceStub(channel)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        self.query = query_pb2_grpc.QueryServiceStub(channel)
        self.command = command_pb2_grpc.CommandServiceStub(channel)
        self.device = command_pb2_grpc.DeviceServiceStub(channel)
        self.rules = rules_pb2_grpc.RulesServiceStub(channel)

    def sign_in(self, username: str, password: str) -> core_pb2.SignInResponse:
        """Signs in as a user and keeps the token for later calls."""
        resp = self.core.SignIn(core_pb2.SignInRequest(username=username, password=password))
        self._state = self._state.signed_in(resp)
        return resp

    def _refresh_rpc(self, refresh_token: str) -> core_pb2.RefreshTokenResponse:
        return self.core.RefreshToken(core_pb2.RefreshTokenRequest(refresh_token=refresh_token))

    def _sign_out_rpc(self, refresh_token: str) -> None:
        self.core.SignOut(core_pb2.SignOutRequest(refresh_token=refresh_token))

    def device_client(self, device_id: int) -> "Client":
        """Returns a client acting as the device, with its key fetched by this client."""
        key = self.core.GetDeviceKey(core_pb2.GetDeviceKeyRequest(id=device_id))
        return Client(self.target, key.token, credentials=self._credentials)

    def close(self) -> None:
        """Closes the channel."""
        self._raw.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
