"""The ergonomic client for asyncio (grpc.aio); the same methods as
iotplatform.IotPlatform, as coroutines and async iterators.

    from iotplatform.aio import AsyncIotPlatform

    async with AsyncIotPlatform("localhost:8080") as client:
        await client.sign_in("root", password)
        dev = await client.devices.create(name="car")
        speed = await client.sensors.create(dev.id, name="speed", type="double")
        async with await client.as_device(dev.id) as device:
            await device.ingest(speed.id, 88.5)
        async for r in client.subscribe(speed.id):
            print(r["time"], r["value"])
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import grpc.aio

from iotplatform import _convert as cv
from iotplatform._convert import Bucket, Reading, ReadingInput, Time, Value
from iotplatform._session import NoSessionError, Session, _State
from iotplatform.gen.iot.core.v1 import core_pb2, core_pb2_grpc
from iotplatform.gen.iot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from iotplatform.gen.iot.query.v1 import query_pb2, query_pb2_grpc
from iotplatform.gen.iot.command.v1 import command_pb2_grpc


def _channel(target: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.aio.Channel:
    if target.startswith("https://"):
        return grpc.aio.secure_channel(target[len("https://"):].rstrip("/"), credentials or grpc.ssl_channel_credentials())
    if target.startswith("http://"):
        target = target[len("http://"):].rstrip("/")
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials)
    return grpc.aio.insecure_channel(target)


class _Rpc:
    """The generated stubs on one grpc.aio channel, and the session (token,
    refresh token, expiry) to send and renew."""

    def __init__(
        self,
        target: str,
        token: Optional[str],
        credentials: Optional[grpc.ChannelCredentials],
        session: Optional[Session] = None,
    ):
        self.target, self.credentials = target, credentials
        self.state = _State.initial(token, session)
        self.renewing = asyncio.Lock()
        self.channel = _channel(target, credentials)
        self.core = core_pb2_grpc.CoreServiceStub(self.channel)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.query = query_pb2_grpc.QueryServiceStub(self.channel)
        self.command = command_pb2_grpc.CommandServiceStub(self.channel)
        self.device = command_pb2_grpc.DeviceServiceStub(self.channel)

    @property
    def token(self) -> Optional[str]:
        return self.state.token

    async def md(self) -> Tuple[Tuple[str, str], ...]:
        """Call metadata: the bearer token, if any, renewed first when it
        expires within 30 s (concurrent calls share one renewal)."""
        state = self.state
        if state.due():
            async with self.renewing:
                if self.state.generation == state.generation:  # nobody renewed meanwhile
                    try:
                        await self.refresh_locked()
                    except Exception:
                        pass  # the call itself then fails unauthenticated
        token = self.state.token
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def refresh_locked(self) -> None:
        state = self.state
        if not state.refresh:
            raise NoSessionError("no refresh token (sign in first)")
        try:
            resp = await self.core.RefreshToken(core_pb2.RefreshTokenRequest(refresh_token=state.refresh))
        except BaseException:
            self.state = self.state.ended()
            raise
        self.state = self.state.signed_in(resp)


class AsyncDevices:
    """The caller's devices."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    async def create(self, name: str, description: str = "", labels: Optional[Mapping[str, str]] = None) -> core_pb2.Device:
        req = core_pb2.CreateDeviceRequest(name=name, description=description, labels=dict(labels or {}))
        return (await self._rpc.core.CreateDevice(req, metadata=await self._rpc.md())).result

    async def list(self, name_filter: str = "") -> List[core_pb2.Device]:
        out: List[core_pb2.Device] = []
        token = ""
        while True:
            req = core_pb2.ListDevicesRequest(name_filter=name_filter, page_token=token, page_size=1000)
            page = await self._rpc.core.ListDevices(req, metadata=await self._rpc.md())
            out.extend(page.result)
            token = page.next_page_token
            if not token:
                return out

    async def get(self, device_id: int) -> core_pb2.Device:
        return (await self._rpc.core.GetDevice(core_pb2.GetDeviceRequest(id=device_id), metadata=await self._rpc.md())).result

    async def delete(self, device_id: int) -> None:
        await self._rpc.core.DeleteDevice(core_pb2.DeleteDeviceRequest(id=device_id), metadata=await self._rpc.md())

    async def key(self, device_id: int) -> str:
        return (await self._rpc.core.GetDeviceKey(core_pb2.GetDeviceKeyRequest(id=device_id), metadata=await self._rpc.md())).token


class AsyncSensors:
    """The sensors of a device."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    async def create(self, device_id: int, name: str, type: str, unit: str = "", description: str = "", path: str = "") -> core_pb2.Sensor:
        req = core_pb2.CreateSensorRequest(
            device_id=device_id, name=name, value_type=cv.value_type(type), unit=unit, description=description, path=path
        )
        return (await self._rpc.core.CreateSensor(req, metadata=await self._rpc.md())).sensor

    async def list(self, device_id: int) -> List[core_pb2.Sensor]:
        resp = await self._rpc.core.ListSensors(core_pb2.ListSensorsRequest(device_id=device_id), metadata=await self._rpc.md())
        return list(resp.result)

    async def delete(self, device_id: int, sensor_id: int) -> None:
        await self._rpc.core.DeleteSensor(core_pb2.DeleteSensorRequest(device_id=device_id, id=sensor_id), metadata=await self._rpc.md())


class AsyncConsumers:
    """Read-only data consumers and their grants."""

    def __init__(self, rpc: _Rpc):
        self._rpc = rpc

    async def create(self, name: str, description: str = "") -> core_pb2.Consumer:
        req = core_pb2.CreateConsumerRequest(name=name, description=description)
        return (await self._rpc.core.CreateConsumer(req, metadata=await self._rpc.md())).result

    async def delete(self, consumer_id: int) -> None:
        await self._rpc.core.DeleteConsumer(core_pb2.DeleteConsumerRequest(id=consumer_id), metadata=await self._rpc.md())

    async def grant(self, consumer_id: int, sensor_id: int) -> core_pb2.Consumer:
        req = core_pb2.GrantSensorRequest(consumer_id=consumer_id, sensor_id=sensor_id)
        return (await self._rpc.core.GrantSensor(req, metadata=await self._rpc.md())).result

    async def revoke(self, consumer_id: int, sensor_id: int) -> None:
        req = core_pb2.RevokeSensorRequest(consumer_id=consumer_id, sensor_id=sensor_id)
        await self._rpc.core.RevokeSensor(req, metadata=await self._rpc.md())

    async def key(self, consumer_id: int) -> str:
        return (await self._rpc.core.GetConsumerKey(core_pb2.GetConsumerKeyRequest(id=consumer_id), metadata=await self._rpc.md())).token


class AsyncIotPlatform:
    """An asyncio client of one platform; see the module docstring."""

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        session: Optional[Session] = None,
    ):
        self.rpc = _Rpc(target, token, credentials, session)
        self.devices = AsyncDevices(self.rpc)
        self.sensors = AsyncSensors(self.rpc)
        self.consumers = AsyncConsumers(self.rpc)

    @property
    def token(self) -> Optional[str]:
        """The token sent with every call (user, device or consumer)."""
        return self.rpc.token

    @property
    def session(self) -> Optional[Session]:
        """The signed-in session (token, refresh token, expiry) to save and
        resume with ``AsyncIotPlatform(target, session=saved)``."""
        return self.rpc.state.session()

    async def sign_in(self, username: str, password: str) -> core_pb2.SignInResponse:
        """Signs in as a user; later calls carry the user's token, renewed
        before it expires with the refresh token until the session ends."""
        resp = await self.rpc.core.SignIn(core_pb2.SignInRequest(username=username, password=password))
        self.rpc.state = self.rpc.state.signed_in(resp)
        return resp

    async def refresh(self) -> None:
        """Trades the refresh token for a new user token (calls do it on their
        own); a failure ends the session. NoSessionError without one."""
        async with self.rpc.renewing:
            await self.rpc.refresh_locked()

    async def sign_out(self) -> None:
        """Revokes the refresh token and forgets the session."""
        async with self.rpc.renewing:
            refresh = self.rpc.state.refresh
            self.rpc.state = _State(None, None, None, self.rpc.state.generation + 1)
        if refresh:
            await self.rpc.core.SignOut(core_pb2.SignOutRequest(refresh_token=refresh))

    def with_token(self, token: str) -> "AsyncIotPlatform":
        return AsyncIotPlatform(self.rpc.target, token, credentials=self.rpc.credentials)

    async def as_device(self, device_id: int) -> "AsyncIotPlatform":
        return self.with_token(await self.devices.key(device_id))

    async def as_consumer(self, consumer_id: int) -> "AsyncIotPlatform":
        return self.with_token(await self.consumers.key(consumer_id))

    async def ingest(self, sensor_id: int, value: Value, timestamp: Optional[Time] = None) -> None:
        await self.ingest_many([(sensor_id, value, timestamp)])

    async def ingest_many(self, readings: Iterable[ReadingInput]) -> int:
        req = ingest_pb2.IngestRequest(readings=cv.ingest_readings(readings))
        return (await self.rpc.ingest.Ingest(req, metadata=await self.rpc.md())).accepted

    async def subscribe(
        self,
        sensor_ids: Union[int, Sequence[int]],
        since: Optional[Time] = None,
        on_live: Optional[Callable[[], None]] = None,
    ) -> AsyncIterator[Reading]:
        """Live readings (stored ones from `since` first); `on_live` is
        called once the subscription is live, before any reading."""
        call = self.rpc.query.Subscribe(
            query_pb2.SubscribeRequest(sensor_id=cv.ids(sensor_ids), since=cv.time_param(since)), metadata=await self.rpc.md()
        )
        live = False
        try:
            async for msg in call:
                if not live:
                    live = True  # the server's first message confirms the subscription
                    if on_live is not None:
                        on_live()
                for r in msg.readings:
                    yield cv.reading(r)
        finally:
            call.cancel()

    async def query(
        self,
        sensor_id: int,
        start: Optional[Time] = None,
        end: Optional[Time] = None,
        *,
        limit: Optional[int] = None,
        newest_first: bool = False,
    ) -> List[Reading]:
        out: List[Reading] = []
        token = ""
        while True:
            want = 1000 if limit is None else min(1000, limit - len(out))
            req = query_pb2.ListReadingsRequest(
                sensor_id=sensor_id,
                to=cv.time_param(end),
                limit=want,
                page_token=token,
                order=query_pb2.ORDER_DESC if newest_first else query_pb2.ORDER_ASC,
                **{"from": cv.time_param(start)},
            )
            page = await self.rpc.query.ListReadings(req, metadata=await self.rpc.md())
            out.extend(cv.reading(r) for r in page.readings)
            token = page.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out

    async def query_df(self, sensor_id: int, start: Optional[Time] = None, end: Optional[Time] = None, **kw: Any) -> Any:
        return cv.dataframe(await self.query(sensor_id, start, end, **kw))

    async def aggregate(
        self, sensor_id: int, interval: str, fn: Sequence[str] = ("avg",), start: Optional[Time] = None, end: Optional[Time] = None
    ) -> List[Bucket]:
        req = query_pb2.AggregateRequest(
            sensor_id=sensor_id, to=cv.time_param(end), interval=interval, fn=list(fn), **{"from": cv.time_param(start)}
        )
        return [cv.bucket(b) for b in (await self.rpc.query.Aggregate(req, metadata=await self.rpc.md())).buckets]

    async def latest(self, sensor_ids: Union[int, Sequence[int]]) -> List[Reading]:
        resp = await self.rpc.query.Latest(query_pb2.LatestRequest(sensor_id=cv.ids(sensor_ids)), metadata=await self.rpc.md())
        return [cv.reading(r) for r in resp.readings]

    async def close(self) -> None:
        await self.rpc.channel.close()

    async def __aenter__(self) -> "AsyncIotPlatform":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncIotPlatform", "Session", "NoSessionError", "AsyncDevices", "AsyncSensors", "AsyncConsumers", "Reading", "Bucket"]
