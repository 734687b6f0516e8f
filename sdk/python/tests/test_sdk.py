"""End-to-end tests of the Python SDK (gRPC) against the real binary."""

import itertools
import statistics
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from iotplatform import Client, core_pb2, ingest_pb2, query_pb2

_names = itertools.count(1)


@pytest.fixture
def admin(platform):
    with Client(platform.target) as c:
        c.sign_in("root", platform.admin_password)
        yield c


def _device_with_sensor(admin):
    dev = admin.core.CreateDevice(core_pb2.CreateDeviceRequest(name=f"py-device-{next(_names)}")).result
    sensor = admin.core.CreateSensor(
        core_pb2.CreateSensorRequest(
            device_id=dev.id, name="temperature", unit="C", value_type=core_pb2.VALUE_TYPE_DOUBLE
        )
    ).sensor
    return dev, sensor


def _ts(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromNanoseconds(int(seconds * 1e9))
    return t


def _list_all(client, sensor_id, **kw):
    """All readings of a sensor, following next_page_token."""
    out, token = [], ""
    while True:
        resp = client.query.ListReadings(
            query_pb2.ListReadingsRequest(sensor_id=sensor_id, page_token=token, **kw)
        )
        out.extend(resp.readings)
        token = resp.next_page_token
        if not token:
            return out


def test_wrong_password_is_unauthenticated(platform):
    with Client(platform.target) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.sign_in("root", "not-the-password")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert c.token is None


def test_anonymous_call_is_unauthenticated(platform):
    with Client(platform.target) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.core.ListDevices(core_pb2.ListDevicesRequest())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_device_ingests_and_user_reads_back(admin):
    assert admin.core.GetCurrentUser(core_pb2.GetCurrentUserRequest()).result.username == "root"
    dev, sensor = _device_with_sensor(admin)
    assert sensor.value_type == core_pb2.VALUE_TYPE_DOUBLE

    with admin.device_client(dev.id) as device:
        resp = device.ingest.Ingest(
            ingest_pb2.IngestRequest(
                readings=[ingest_pb2.Reading(sensor_id=sensor.id, timestamp=_ts(time.time() - 1), double_value=21.5)]
            )
        )
        assert resp.accepted == 1
        with pytest.raises(grpc.RpcError) as info:
            device.core.ListDevices(core_pb2.ListDevicesRequest())
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

    readings = _list_all(admin, sensor.id)
    assert len(readings) == 1
    assert readings[0].sensor_id == sensor.id
    assert readings[0].device_id == dev.id
    assert readings[0].WhichOneof("value") == "double_value"
    assert readings[0].double_value == 21.5
    latest = admin.query.Latest(query_pb2.LatestRequest(sensor_id=[sensor.id])).readings
    assert [r.double_value for r in latest] == [21.5]


def test_push_100_readings_and_read_them_back(admin):
    """What a data scientist does first: load a series, get the same series back."""
    dev, sensor = _device_with_sensor(admin)
    start = int(time.time()) - 3600
    values = [20 + 5 * ((i * 37) % 100) / 100 for i in range(100)]
    with admin.device_client(dev.id) as device:
        resp = device.ingest.Ingest(
            ingest_pb2.IngestRequest(
                readings=[
                    ingest_pb2.Reading(sensor_id=sensor.id, timestamp=_ts(start + i), double_value=v)
                    for i, v in enumerate(values)
                ]
            )
        )
    assert resp.accepted == 100

    readings = _list_all(admin, sensor.id, order=query_pb2.ORDER_ASC, limit=30)
    assert len(readings) == 100
    assert [r.timestamp.seconds for r in readings] == [start + i for i in range(100)]
    got = [r.double_value for r in readings]
    assert got == values
    assert statistics.fmean(got) == pytest.approx(statistics.fmean(values))


def test_command_reaches_the_device_stream_and_its_answer_is_recorded(admin):
    import threading

    from iotplatform.gen.iot.command.v1 import command_pb2

    dev, _ = _device_with_sensor(admin)
    sent = admin.command.SendCommand(command_pb2.SendCommandRequest(device_id=dev.id, name="reboot"))
    assert sent.result.status == command_pb2.COMMAND_STATUS_QUEUED

    arrived = threading.Event()
    with admin.device_client(dev.id) as device:
        def messages():
            arrived.wait(10)  # answer once the command came down the stream
            yield command_pb2.ConnectRequest(ack=command_pb2.CommandAck(command_id=sent.result.id))
            yield command_pb2.ConnectRequest(response=command_pb2.CommandResponse(command_id=sent.result.id, success=True))

        names = []
        for m in device.device.Connect(messages(), timeout=15):
            if m.HasField("command"):
                names.append(m.command.name)
                arrived.set()
    assert names == ["reboot"]
    got = admin.command.GetCommand(command_pb2.GetCommandRequest(id=sent.result.id)).result
    assert got.status == command_pb2.COMMAND_STATUS_SUCCEEDED
    assert [e.status for e in got.history] == [
        command_pb2.COMMAND_STATUS_QUEUED,
        command_pb2.COMMAND_STATUS_SENT,
        command_pb2.COMMAND_STATUS_DELIVERED,
        command_pb2.COMMAND_STATUS_SUCCEEDED,
    ]
