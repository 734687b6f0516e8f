"""The Connect-protocol client (connect-python) against the real binary."""

import time

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf.timestamp_pb2 import Timestamp

from iotplatform import core_pb2, ingest_pb2, query_pb2
from iotplatform.connect import ConnectClient


def test_connect_wrong_password_is_unauthenticated(platform):
    with ConnectClient(f"http://{platform.target}") as c:
        with pytest.raises(ConnectError) as info:
            c.sign_in("root", "not-the-password")
        assert info.value.code == Code.UNAUTHENTICATED


def test_connect_device_ingests_and_user_reads_back(platform):
    with ConnectClient(f"http://{platform.target}") as iot:
        iot.sign_in("root", platform.admin_password)
        dev = iot.core.create_device(core_pb2.CreateDeviceRequest(name="py-connect-device")).result
        sensor = iot.core.create_sensor(
            core_pb2.CreateSensorRequest(device_id=dev.id, name="t", value_type=core_pb2.VALUE_TYPE_DOUBLE)
        ).sensor
        ts = Timestamp()
        ts.FromSeconds(int(time.time()) - 5)
        with iot.device_client(dev.id) as device:
            resp = device.ingest.ingest(
                ingest_pb2.IngestRequest(readings=[ingest_pb2.Reading(sensor_id=sensor.id, timestamp=ts, double_value=7.25)])
            )
            assert resp.accepted == 1
        got = iot.query.list_readings(query_pb2.ListReadingsRequest(sensor_id=sensor.id)).readings
        assert [r.double_value for r in got] == [7.25]
