"""Python SDK of iotplatform.

    from iotplatform import Client, core_pb2

    with Client("localhost:8080") as iot:
        iot.sign_in("root", password)
        dev = iot.core.CreateDevice(core_pb2.CreateDeviceRequest(name="car")).result

The generated messages live in iotplatform.gen.iot.{core,ingest,query}.v1 and
are re-exported here as core_pb2, ingest_pb2 and query_pb2.
"""

from iotplatform.client import Client
from iotplatform.gen.iot.core.v1 import core_pb2
from iotplatform.gen.iot.ingest.v1 import ingest_pb2
from iotplatform.gen.iot.query.v1 import query_pb2

__all__ = ["Client", "core_pb2", "ingest_pb2", "query_pb2"]
