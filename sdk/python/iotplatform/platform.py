"""The ergonomic, typed client (synchronous; see iotplatform.aio for asyncio).

    from iotplatform import IotPlatform

    with IotPlatform("localhost:8080") as client:
        client.sign_in("root", password)
        dev = client.devices.create(name="car")
        speed = client.sensors.create(dev.id, name="speed", type="double", unit="km/h")
        with client.as_device(dev.id) as device:
            device.ingest(speed.id, 88.5, datetime.now(timezone.utc))
        rows = client.query(speed.id, start=datetime.now(timezone.utc) - timedelta(hours=1))
        for r in client.subscribe(speed.id):   # blocks; live readings as dicts
            print(r["time"], r["value"])

It speaks gRPC over the generated stubs (client.rpc.core, client.rpc.ingest,
client.rpc.query: everything not wrapped here). Errors are grpc.RpcError
(e.code() == grpc.StatusCode.PERMISSION_DENIED, ...).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import grpc

from iotplatform import _convert as cv
from iotplatform._convert import Bucket, Reading, ReadingInput, Time, Value
from iotplatform._session import NoSessionError, Session
from iotplatform.client import Client
from iotplatform.gen.iot.core.v1 import core_pb2
from iotplatform.gen.iot.ingest.v1 import ingest_pb2
from iotplatform.gen.iot.query.v1 import query_pb2


class Devices:
    """The caller's devices."""

    def __init__(self, rpc: Client):
        self._rpc = rpc

    def create(self, name: str, description: str = "", labels: Optional[Mapping[str, str]] = None) -> core_pb2.Device:
        """Registers a device owned by the caller."""
        req = core_pb2.CreateDeviceRequest(name=name, description=description, labels=dict(labels or {}))
        return self._rpc.core.CreateDevice(req).result

    def list(self, name_filter: str = "") -> List[core_pb2.Device]:
        """Every device of the caller (all pages), optionally filtered by name."""
        out: List[core_pb2.Device] = []
        token = ""
        while True:
            page = self._rpc.core.ListDevices(core_pb2.ListDevicesRequest(name_filter=name_filter, page_token=token, page_size=1000))
            out.extend(page.result)
            token = page.next_page_token
            if not token:
                return out

    def get(self, device_id: int) -> core_pb2.Device:
        return self._rpc.core.GetDevice(core_pb2.GetDeviceRequest(id=device_id)).result

    def delete(self, device_id: int) -> None:
        self._rpc.core.DeleteDevice(core_pb2.DeleteDeviceRequest(id=device_id))

    def key(self, device_id: int) -> str:
        """The device key: the token the device authenticates with."""
        return self._rpc.core.GetDeviceKey(core_pb2.GetDeviceKeyRequest(id=device_id)).token


class Sensors:
    """The sensors of a device."""

    def __init__(self, rpc: Client):
        self._rpc = rpc

    def create(self, device_id: int, name: str, type: str, unit: str = "", description: str = "", path: str = "") -> core_pb2.Sensor:
        """Adds a sensor; type is double, long, boolean, string or object."""
        req = core_pb2.CreateSensorRequest(
            device_id=device_id, name=name, value_type=cv.value_type(type), unit=unit, description=description, path=path
        )
        return self._rpc.core.CreateSensor(req).sensor

    def list(self, device_id: int) -> List[core_pb2.Sensor]:
        return list(self._rpc.core.ListSensors(core_pb2.ListSensorsRequest(device_id=device_id)).result)

    def get(self, device_id: int, sensor_id: int) -> core_pb2.Sensor:
        return self._rpc.core.GetSensor(core_pb2.GetSensorRequest(device_id=device_id, id=sensor_id)).sensor

    def delete(self, device_id: int, sensor_id: int) -> None:
        self._rpc.core.DeleteSensor(core_pb2.DeleteSensorRequest(device_id=device_id, id=sensor_id))


class Consumers:
    """Read-only data consumers and their grants."""

    def __init__(self, rpc: Client):
        self._rpc = rpc

    def create(self, name: str, description: str = "") -> core_pb2.Consumer:
        return self._rpc.core.CreateConsumer(core_pb2.CreateConsumerRequest(name=name, description=description)).result

    def list(self) -> List[core_pb2.Consumer]:
        out: List[core_pb2.Consumer] = []
        token = ""
        while True:
            page = self._rpc.core.ListConsumers(core_pb2.ListConsumersRequest(page_token=token, page_size=1000))
            out.extend(page.result)
            token = page.next_page_token
            if not token:
                return out

    def delete(self, consumer_id: int) -> None:
        self._rpc.core.DeleteConsumer(core_pb2.DeleteConsumerRequest(id=consumer_id))

    def grant(self, consumer_id: int, sensor_id: int) -> core_pb2.Consumer:
        """Lets the consumer read the sensor; returns the consumer with its grants."""
        return self._rpc.core.GrantSensor(core_pb2.GrantSensorRequest(consumer_id=consumer_id, sensor_id=sensor_id)).result

    def revoke(self, consumer_id: int, sensor_id: int) -> None:
        self._rpc.core.RevokeSensor(core_pb2.RevokeSensorRequest(consumer_id=consumer_id, sensor_id=sensor_id))

    def key(self, consumer_id: int) -> str:
        """The consumer key: the token the consumer reads with."""
        return self._rpc.core.GetConsumerKey(core_pb2.GetConsumerKeyRequest(id=consumer_id)).token


class IotPlatform:
    """A synchronous client of one platform; see the module docstring.

    target is host:port of the API ("localhost:8080"); an http:// prefix is
    dropped, https:// uses TLS (credentials for a private CA). After
    sign_in the user token (15 minutes by default) is renewed before it
    expires, until sign_out; session=client.session resumes a saved session.
    """

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        session: Optional[Session] = None,
    ):
        self.rpc = Client(target, token, credentials=credentials, session=session)
        self.devices = Devices(self.rpc)
        self.sensors = Sensors(self.rpc)
        self.consumers = Consumers(self.rpc)

    @property
    def token(self) -> Optional[str]:
        """The token sent with every call (user, device or consumer)."""
        return self.rpc.token

    @token.setter
    def token(self, token: Optional[str]) -> None:
        self.rpc.token = token

    @property
    def session(self) -> Optional[Session]:
        """The signed-in session (token, refresh token, expiry): save it
        (session.to_dict()) and resume with IotPlatform(target, session=...)."""
        return self.rpc.session

    def sign_in(self, username: str, password: str) -> core_pb2.SignInResponse:
        """Signs in as a user; later calls carry the user's token, renewed
        with the refresh token before it expires until the session ends."""
        return self.rpc.sign_in(username, password)

    def refresh(self) -> None:
        """Renews the user token now (calls do it on their own when it is
        about to expire); a failure ends the session. NoSessionError without one."""
        self.rpc.refresh()

    def sign_out(self) -> None:
        """Revokes the refresh token and forgets the session."""
        self.rpc.sign_out()

    def with_token(self, token: str) -> "IotPlatform":
        """A client of the same API (own channel) that sends another token."""
        return IotPlatform(self.rpc.target, token, credentials=self.rpc._credentials)

    def as_device(self, device_id: int) -> "IotPlatform":
        """A client acting as the device (its key fetched with this client's token)."""
        return self.with_token(self.devices.key(device_id))

    def as_consumer(self, consumer_id: int) -> "IotPlatform":
        """A client acting as the consumer (its key fetched with this client's token)."""
        return self.with_token(self.consumers.key(consumer_id))

    def ingest(self, sensor_id: int, value: Value, timestamp: Optional[Time] = None) -> None:
        """Sends one reading as a device; returns once it is durable.

        value is a float, int, bool, str or dict (for object sensors);
        timestamp an aware datetime, epoch seconds or RFC 3339 (None: the
        server's receive time). Needs a device token (as_device).
        """
        self.ingest_many([(sensor_id, value, timestamp)])

    def ingest_many(self, readings: Iterable[ReadingInput]) -> int:
        """Sends a batch as a device, all or nothing; returns how many were accepted.

        Each reading is (sensor_id, value), (sensor_id, value, timestamp) or
        a dict with sensor_id, value and optionally timestamp.
        """
        return self.rpc.ingest.Ingest(ingest_pb2.IngestRequest(readings=cv.ingest_readings(readings))).accepted

    def subscribe(
        self,
        sensor_ids: Union[int, Sequence[int]],
        since: Optional[Time] = None,
        on_live: Optional[Callable[[], None]] = None,
    ) -> Iterator[Reading]:
        """Live readings of the sensors (stored ones from `since` first), as
        dicts, until the iterator is closed (break out of the loop).
        `on_live` is called once the subscription is live, before any
        reading: every reading stored from then on is delivered, whatever
        its timestamp (start producing there)."""
        stream = self.rpc.query.Subscribe(
            query_pb2.SubscribeRequest(sensor_id=cv.ids(sensor_ids), since=cv.time_param(since))
        )
        live = False
        try:
            for msg in stream:
                if not live:
                    live = True  # the server's first message confirms the subscription
                    if on_live is not None:
                        on_live()
                for r in msg.readings:
                    yield cv.reading(r)
        finally:
            stream.cancel()

    def query(
        self,
        sensor_id: int,
        start: Optional[Time] = None,
        end: Optional[Time] = None,
        *,
        limit: Optional[int] = None,
        newest_first: bool = False,
    ) -> List[Reading]:
        """Stored readings in [start, end), oldest first, as a list of dicts
        (every page, at most `limit`)."""
        out: List[Reading] = []
        token = ""
        while True:
            want = 1000 if limit is None else min(1000, limit - len(out))
            page = self.rpc.query.ListReadings(
                query_pb2.ListReadingsRequest(
                    sensor_id=sensor_id,
                    to=cv.time_param(end),
                    limit=want,
                    page_token=token,
                    order=query_pb2.ORDER_DESC if newest_first else query_pb2.ORDER_ASC,
                    **{"from": cv.time_param(start)},
                )
            )
            out.extend(cv.reading(r) for r in page.readings)
            token = page.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out

    def query_df(self, sensor_id: int, start: Optional[Time] = None, end: Optional[Time] = None, **kw: Any) -> Any:
        """query() as a pandas DataFrame indexed by time (pip install "iotplatform[pandas]")."""
        return cv.dataframe(self.query(sensor_id, start, end, **kw))

    def aggregate(
        self,
        sensor_id: int,
        interval: str,
        fn: Sequence[str] = ("avg",),
        start: Optional[Time] = None,
        end: Optional[Time] = None,
    ) -> List[Bucket]:
        """Aggregates per interval ("1m", "1h", ...) with fn (avg, min, max, sum, first, last)."""
        req = query_pb2.AggregateRequest(
            sensor_id=sensor_id, to=cv.time_param(end), interval=interval, fn=list(fn), **{"from": cv.time_param(start)}
        )
        return [cv.bucket(b) for b in self.rpc.query.Aggregate(req).buckets]

    def latest(self, sensor_ids: Union[int, Sequence[int]]) -> List[Reading]:
        """The latest reading of each sensor that has one."""
        return [cv.reading(r) for r in self.rpc.query.Latest(query_pb2.LatestRequest(sensor_id=cv.ids(sensor_ids))).readings]

    def close(self) -> None:
        self.rpc.close()

    def __enter__(self) -> "IotPlatform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["IotPlatform", "Session", "NoSessionError", "Devices", "Sensors", "Consumers", "Reading", "Bucket", "Value", "Time"]
