"""Conversions between Python values and the generated messages (shared by
the sync and the asyncio client)."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypedDict, Union

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from iotplatform.gen.iot.core.v1 import core_pb2
from iotplatform.gen.iot.ingest.v1 import ingest_pb2
from iotplatform.gen.iot.query.v1 import query_pb2

#: A reading's value, typed like its sensor.
Value = Union[float, int, bool, str, Dict[str, Any]]
#: A time: an aware datetime (a naive one is taken as UTC), epoch seconds,
#: or an RFC 3339 string.
Time = Union[_dt.datetime, int, float, str]


class Reading(TypedDict):
    """A stored or live reading."""

    sensor_id: int
    device_id: int
    #: Measurement time, timezone-aware UTC (microsecond precision).
    time: _dt.datetime
    value: Optional[Value]


class Bucket(TypedDict, total=False):
    """One interval of an aggregate; functions not asked for are absent."""

    start: _dt.datetime
    count: int
    avg: float
    min: float
    max: float
    sum: float
    first: float
    last: float


VALUE_TYPES = {
    "double": core_pb2.VALUE_TYPE_DOUBLE,
    "long": core_pb2.VALUE_TYPE_LONG,
    "boolean": core_pb2.VALUE_TYPE_BOOLEAN,
    "string": core_pb2.VALUE_TYPE_STRING,
    "object": core_pb2.VALUE_TYPE_OBJECT,
}


def value_type(t: str) -> int:
    try:
        return VALUE_TYPES[t]
    except KeyError:
        raise ValueError(f"unknown sensor type {t!r}: one of {', '.join(VALUE_TYPES)}") from None


def _datetime(t: Union[_dt.datetime, int, float]) -> _dt.datetime:
    if isinstance(t, _dt.datetime):
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc)


def timestamp(t: Time) -> Timestamp:
    ts = Timestamp()
    if isinstance(t, str):
        ts.FromJsonString(t)
    else:
        ts.FromDatetime(_datetime(t))
    return ts


def time_param(t: Optional[Time]) -> str:
    """A from/to/since parameter: RFC 3339 (the API also takes epoch ms)."""
    if t is None:
        return ""
    if isinstance(t, str):
        return t
    return _datetime(t).isoformat()


def ingest_reading(sensor_id: int, value: Value, ts: Optional[Time] = None) -> ingest_pb2.Reading:
    r = ingest_pb2.Reading(sensor_id=int(sensor_id))
    if ts is not None:
        r.timestamp.CopyFrom(timestamp(ts))
    if isinstance(value, bool):
        r.bool_value = value
    elif isinstance(value, int):
        r.long_value = value
    elif isinstance(value, float):
        r.double_value = value
    elif isinstance(value, str):
        r.string_value = value
    elif isinstance(value, Mapping):
        s = Struct()
        s.update(dict(value))
        r.object_value.CopyFrom(s)
    else:
        raise TypeError(f"unsupported value type {type(value).__name__}")
    return r


ReadingInput = Union[Tuple[int, Value], Tuple[int, Value, Optional[Time]], Mapping[str, Any]]


def ingest_readings(readings: Iterable[ReadingInput]) -> List[ingest_pb2.Reading]:
    out = []
    for r in readings:
        if isinstance(r, Mapping):
            out.append(ingest_reading(r["sensor_id"], r["value"], r.get("timestamp")))
        else:
            out.append(ingest_reading(*r))
    return out


def reading(r: query_pb2.Reading) -> Reading:
    kind = r.WhichOneof("value")
    value: Optional[Value]
    if kind is None:
        value = None
    elif kind == "object_value":
        value = json_format.MessageToDict(r.object_value)
    else:
        value = getattr(r, kind)
    return Reading(
        sensor_id=r.sensor_id,
        device_id=r.device_id,
        time=r.timestamp.ToDatetime(tzinfo=_dt.timezone.utc),
        value=value,
    )


def bucket(b: query_pb2.Bucket) -> Bucket:
    out = Bucket(start=b.start.ToDatetime(tzinfo=_dt.timezone.utc), count=b.count)
    for f in ("avg", "min", "max", "sum", "first", "last"):
        if b.HasField(f):
            out[f] = getattr(b, f)  # type: ignore[literal-required]
    return out


def ids(sensor_ids: Union[int, Sequence[int]]) -> List[int]:
    return [int(sensor_ids)] if isinstance(sensor_ids, int) else [int(s) for s in sensor_ids]


def dataframe(rows: List[Reading]) -> Any:
    """rows as a pandas DataFrame indexed by time (needs the pandas extra)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError('query_df needs pandas: pip install "iotplatform[pandas]"') from None
    df = pd.DataFrame(rows, columns=["time", "sensor_id", "device_id", "value"])
    return df.set_index("time")
