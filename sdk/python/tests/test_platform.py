"""The ergonomic clients (IotPlatform, AsyncIotPlatform) against the real binary.

scripts/sdk-test.sh also runs this file in a fresh virtualenv that installed
the built wheel (IOT_SDK_FROM_WHEEL=1 checks that the wheel is what runs).
"""

import asyncio
import datetime as dt
import os
import sys
import threading
import time

import grpc
import pytest

import iotplatform
from iotplatform import IotPlatform
from iotplatform.aio import AsyncIotPlatform

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_runs_the_installed_wheel_when_asked():
    if os.environ.get("IOT_SDK_FROM_WHEEL") != "1":
        pytest.skip("run from the source tree (scripts/sdk-test.sh runs it from the wheel too)")
    assert iotplatform.__file__.startswith(sys.prefix), iotplatform.__file__
    assert "site-packages" in iotplatform.__file__


def test_sync_devices_ingest_subscribe_query_consumers(platform):
    with IotPlatform(platform.target) as client:
        client.sign_in("root", platform.admin_password)
        dev = client.devices.create(name="py-ergonomic", labels={"kind": "car"})
        assert dev.id > 0
        assert any(d.id == dev.id for d in client.devices.list(name_filter="py-ergonomic"))
        speed = client.sensors.create(dev.id, name="speed", type="double", unit="km/h")
        label = client.sensors.create(dev.id, name="label", type="string")
        assert sorted(s.name for s in client.sensors.list(dev.id)) == ["label", "speed"]
        with pytest.raises(ValueError):
            client.sensors.create(dev.id, name="x", type="float")

        live = []
        subscribed = threading.Event()

        def listen():
            it = client.subscribe(speed.id, since=T0 - dt.timedelta(minutes=1))
            subscribed.set()
            for r in it:
                live.append(r)
                if len(live) == 3:
                    it.close()
                    return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        subscribed.wait(5)

        with client.as_device(dev.id) as device:
            device.ingest(speed.id, 10.5, T0)
            n = device.ingest_many(
                [
                    (speed.id, 20.5, T0 + dt.timedelta(minutes=1)),
                    {"sensor_id": speed.id, "value": 30.5, "timestamp": (T0 + dt.timedelta(minutes=2)).timestamp()},
                    (label.id, "parked"),
                ]
            )
            assert n == 3
            with pytest.raises(grpc.RpcError) as err:
                device.ingest(speed.id, "fast")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as err:
                device.devices.list()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

        listener.join(10)
        assert [r["value"] for r in live] == [10.5, 20.5, 30.5]
        assert live[0]["time"] == T0 and live[0]["sensor_id"] == speed.id and live[0]["device_id"] == dev.id

        rows = client.query(speed.id, start=T0, end=T0 + dt.timedelta(hours=1))
        assert isinstance(rows, list) and isinstance(rows[0], dict)
        assert [(r["time"], r["value"]) for r in rows] == [
            (T0, 10.5),
            (T0 + dt.timedelta(minutes=1), 20.5),
            (T0 + dt.timedelta(minutes=2), 30.5),
        ]
        assert [r["value"] for r in client.query(speed.id, start=T0, limit=2, newest_first=True)] == [30.5, 20.5]
        buckets = client.aggregate(speed.id, "1h", fn=["avg", "max"], start=T0, end="2026-01-01T13:00:00Z")
        assert len(buckets) == 1
        assert buckets[0]["count"] == 3 and buckets[0]["avg"] == 20.5 and buckets[0]["max"] == 30.5
        assert "min" not in buckets[0]
        assert [r["value"] for r in client.latest([label.id])] == ["parked"]

        consumer = client.consumers.create(name="py-dashboard")
        assert list(client.consumers.grant(consumer.id, speed.id).sensor_ids) == [speed.id]
        with client.as_consumer(consumer.id) as reader:
            assert len(reader.query(speed.id)) == 3
            with pytest.raises(grpc.RpcError) as err:
                reader.query(label.id)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        client.consumers.revoke(consumer.id, speed.id)
        client.consumers.delete(consumer.id)
        assert all(c.id != consumer.id for c in client.consumers.list())

        client.devices.delete(dev.id)
        with pytest.raises(grpc.RpcError) as err:
            client.devices.get(dev.id)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_query_df_is_a_time_indexed_dataframe(platform):
    pd = pytest.importorskip("pandas", reason="pandas is the optional extra iotplatform[pandas]")
    with IotPlatform(platform.target) as client:
        client.sign_in("root", platform.admin_password)
        dev = client.devices.create(name="py-pandas")
        s = client.sensors.create(dev.id, name="t", type="long")
        with client.as_device(dev.id) as device:
            device.ingest_many([(s.id, i, T0 + dt.timedelta(seconds=i)) for i in range(5)])
        df = client.query_df(s.id, start=T0)
        assert isinstance(df, pd.DataFrame)
        assert list(df["value"]) == [0, 1, 2, 3, 4]
        assert df.index[0] == pd.Timestamp(T0)


def test_asyncio_client(platform):
    async def main():
        async with AsyncIotPlatform(platform.target) as client:
            await client.sign_in("root", platform.admin_password)
            dev = await client.devices.create(name="py-async")
            s = await client.sensors.create(dev.id, name="on", type="boolean")
            device = await client.as_device(dev.id)
            async with device:
                await device.ingest(s.id, True, T0)
                assert await device.ingest_many([(s.id, False, T0 + dt.timedelta(seconds=1))]) == 1
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await device.devices.list()
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            live = []
            async for r in client.subscribe(s.id, since=T0):
                live.append(r["value"])
                if len(live) == 2:
                    break
            assert live == [True, False]
            rows = await client.query(s.id, start=T0)
            assert [r["value"] for r in rows] == [True, False]
            assert (await client.latest(s.id))[0]["value"] is False
            await client.devices.delete(dev.id)

    asyncio.run(asyncio.wait_for(main(), 30))


def _counted(stub, name):
    """Wraps stub.<name> (the real call) to count the renewals."""
    real, calls = getattr(stub, name), []

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    setattr(stub, name, counted)
    return calls


def test_sync_session_renews_expired_tokens_once_and_signs_out(short_token_platform):
    p = short_token_platform
    with IotPlatform(p.target) as client:
        client.sign_in("root", p.admin_password)
        first = client.token
        time.sleep(2.5)  # past the 2 s user-token lifetime
        client.devices.list()
        assert client.token != first, "the token was not renewed"
        with IotPlatform(p.target, first) as stale:
            with pytest.raises(grpc.RpcError) as err:
                stale.devices.list()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

        refreshes = _counted(client.rpc.core, "RefreshToken")
        time.sleep(2.5)
        start, errors = threading.Barrier(2), []

        def call():
            start.wait()
            try:
                client.devices.list()
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append(e)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(refreshes) == 1

        saved = iotplatform.Session.from_dict(client.session.to_dict())
        client.sign_out()
        assert client.session is None
        with pytest.raises(iotplatform.NoSessionError):
            client.refresh()
    with IotPlatform(p.target, session=saved) as again:
        with pytest.raises(grpc.RpcError) as err:
            again.refresh()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_asyncio_session_renews_expired_tokens_once_and_signs_out(short_token_platform):
    p = short_token_platform

    async def main():
        async with AsyncIotPlatform(p.target) as client:
            await client.sign_in("root", p.admin_password)
            first = client.token
            await asyncio.sleep(2.5)  # past the 2 s user-token lifetime
            await client.devices.list()
            assert client.token != first, "the token was not renewed"
            async with AsyncIotPlatform(p.target, first) as stale:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stale.devices.list()
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

            refreshes = []
            real = client.rpc.core.RefreshToken

            def counted(*args, **kw):
                refreshes.append(1)
                return real(*args, **kw)

            client.rpc.core.RefreshToken = counted
            await asyncio.sleep(2.5)
            await asyncio.gather(client.devices.list(), client.consumers.create(name="py-async-renew"), client.devices.list())
            assert len(refreshes) == 1

            saved = client.session
            await client.sign_out()
            assert client.session is None
            with pytest.raises(iotplatform.NoSessionError):
                await client.refresh()
        async with AsyncIotPlatform(p.target, session=saved) as again:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await again.refresh()  # revoked by sign_out
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(main())


def test_subscribe_on_live_then_an_old_reading_is_delivered(platform):
    """on_live fires once, before any reading; a reading with an old
    timestamp stored after it (no since) can only come from the live feed."""
    with IotPlatform(platform.target) as client:
        client.sign_in("root", platform.admin_password)
        dev = client.devices.create(name="py-on-live")
        s = client.sensors.create(dev.id, name="t", type="double")
        with client.as_device(dev.id) as device:
            lives = []

            def produce():
                lives.append(len(got))
                device.ingest(s.id, 7.5, dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc))

            got = []
            for r in client.subscribe(s.id, on_live=produce):
                got.append(r["value"])
                break
        assert lives == [0]
        assert got == [7.5]

    async def main():
        async with AsyncIotPlatform(platform.target) as client:
            await client.sign_in("root", platform.admin_password)
            dev = await client.devices.create(name="py-on-live-aio")
            s = await client.sensors.create(dev.id, name="t", type="double")
            device = await client.as_device(dev.id)
            async with device:
                live = asyncio.Event()
                got = []

                async def listen():
                    async for r in client.subscribe(s.id, on_live=live.set):
                        got.append(r["value"])
                        return

                task = asyncio.create_task(listen())
                await live.wait()
                await device.ingest(s.id, 8.5, dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc))
                await task
            assert got == [8.5]

    asyncio.run(asyncio.wait_for(main(), 30))
