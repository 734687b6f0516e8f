"""Session renewal of the stub clients (gRPC Client, ConnectClient) against a
platform whose user tokens live 2 s (--user-token-ttl 2s)."""

import threading
import time

import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from iotplatform import Client, NoSessionError, core_pb2
from iotplatform.connect import ConnectClient

EXPIRED = 2.5  # seconds: past the 2 s user-token lifetime


def _count_refreshes(stub, name):
    """Wraps stub.<name> (the real call) to count the renewals."""
    real, calls = getattr(stub, name), []

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    setattr(stub, name, counted)
    return calls


def test_client_renews_the_expired_user_token(short_token_platform):
    p = short_token_platform
    with Client(p.target) as c:
        c.sign_in("root", p.admin_password)
        first = c.token
        assert c.session.refresh_token and c.session.expires is not None
        time.sleep(EXPIRED)
        assert c.core.GetCurrentUser(core_pb2.GetCurrentUserRequest()).result.username == "root"
        assert c.token != first, "the token was not renewed"
        with Client(p.target, first) as stale:
            with pytest.raises(grpc.RpcError) as err:
                stale.core.GetCurrentUser(core_pb2.GetCurrentUserRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # Concurrent calls after the expiry share one renewal.
        refreshes = _count_refreshes(c.core, "RefreshToken")
        time.sleep(EXPIRED)
        start, results, errors = threading.Barrier(4), [], []

        def call():
            start.wait()
            try:
                results.append(c.core.GetCurrentUser(core_pb2.GetCurrentUserRequest()).result.username)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert results == ["root"] * 4
        assert len(refreshes) == 1

        # A saved session resumes in another client.
        saved = c.session
        with Client(p.target, session=saved) as resumed:
            assert resumed.core.GetCurrentUser(core_pb2.GetCurrentUserRequest()).result.username == "root"
            resumed.refresh()  # spends the saved refresh token
            assert resumed.session.refresh_token != saved.refresh_token

        # c's refresh token was spent by the resumed client: the renewal
        # fails, the session is forgotten, calls are unauthenticated.
        time.sleep(EXPIRED)
        with pytest.raises(grpc.RpcError) as err:
            c.core.GetCurrentUser(core_pb2.GetCurrentUserRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert c.session.refresh_token == ""
        with pytest.raises(NoSessionError):
            c.refresh()


def test_client_sign_out_revokes_the_refresh_token(short_token_platform):
    p = short_token_platform
    with Client(p.target) as c:
        c.sign_in("root", p.admin_password)
        c.refresh()
        saved = c.session
        c.sign_out()
        assert c.token is None and c.session is None
        with pytest.raises(NoSessionError):
            c.refresh()
    with Client(p.target, session=saved) as again:
        with pytest.raises(grpc.RpcError) as err:
            again.refresh()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_connect_client_renews_and_signs_out(short_token_platform):
    p = short_token_platform
    with ConnectClient(f"http://{p.target}") as c:
        c.sign_in("root", p.admin_password)
        first = c.token
        time.sleep(EXPIRED)
        refreshes = _count_refreshes(c.core, "refresh_token")
        assert c.core.get_current_user(core_pb2.GetCurrentUserRequest()).result.username == "root"
        assert c.token != first
        assert len(refreshes) == 1
        with ConnectClient(f"http://{p.target}", first) as stale:
            with pytest.raises(ConnectError) as err:
                stale.core.get_current_user(core_pb2.GetCurrentUserRequest())
            assert err.value.code == Code.UNAUTHENTICATED
        saved = c.session
        c.sign_out()
        with pytest.raises(NoSessionError):
            c.refresh()
    with ConnectClient(f"http://{p.target}", session=saved) as again:
        with pytest.raises(ConnectError) as err:
            again.refresh()
        assert err.value.code == Code.UNAUTHENTICATED
