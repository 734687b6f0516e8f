"""Python SDK of iotplatform.

The ergonomic client (sync; iotplatform.aio.AsyncIotPlatform for asyncio):

    from iotplatform import IotPlatform

    with IotPlatform("localhost:8080") as client:
        client.sign_in("root", password)
        dev = client.devices.create(name="car")
        speed = client.sensors.create(dev.id, name="speed", type="double")
        with client.as_device(dev.id) as device:
            device.ingest(speed.id, 88.5)
        rows = client.query(speed.id)              # a list of dicts
        for r in client.subscribe(speed.id):       # live readings
            ...

The generated stubs with token handling:

    from iotplatform import Client, core_pb2

    with Client("localhost:8080") as iot:
        iot.sign_in("root", password)
        dev = iot.core.CreateDevice(core_pb2.CreateDeviceRequest(name="car")).result

The generated messages live in iotplatform.gen.iot.{core,ingest,query}.v1 and
are re-exported here as core_pb2, ingest_pb2 and query_pb2.
"""

from iotplatform._convert import Bucket, Reading
from iotplatform._session import NoSessionError, Session
from iotplatform.client import Client
from iotplatform.platform import IotPlatform
from iotplatform.gen.iot.core.v1 import core_pb2
from iotplatform.gen.iot.ingest.v1 import ingest_pb2
from iotplatform.gen.iot.query.v1 import query_pb2

__version__ = "0.1.0"

__all__ = ["IotPlatform", "Session", "NoSessionError", "Reading", "Bucket", "Client", "core_pb2", "ingest_pb2", "query_pb2", "__version__"]
