import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Rule(_message.Message):
    __slots__ = ("id", "owner_id", "name", "sensor_id", "device_id", "threshold", "absence", "rate", "equals", "webhook_url", "has_webhook_secret", "create_time", "command")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ABSENCE_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    HAS_WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    id: int
    owner_id: int
    name: str
    sensor_id: int
    device_id: int
    threshold: Threshold
    absence: Absence
    rate: RateOfChange
    equals: Equals
    webhook_url: str
    has_webhook_secret: bool
    create_time: _timestamp_pb2.Timestamp
    command: RuleCommand
    def __init__(self, id: _Optional[int] = ..., owner_id: _Optional[int] = ..., name: _Optional[str] = ..., sensor_id: _Optional[int] = ..., device_id: _Optional[int] = ..., threshold: _Optional[_Union[Threshold, _Mapping]] = ..., absence: _Optional[_Union[Absence, _Mapping]] = ..., rate: _Optional[_Union[RateOfChange, _Mapping]] = ..., equals: _Optional[_Union[Equals, _Mapping]] = ..., webhook_url: _Optional[str] = ..., has_webhook_secret: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., command: _Optional[_Union[RuleCommand, _Mapping]] = ...) -> None: ...

class RuleCommand(_message.Message):
    __slots__ = ("name", "json_payload")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JSON_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    json_payload: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., json_payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Threshold(_message.Message):
    __slots__ = ("op", "low", "high", "duration")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OP_UNSPECIFIED: _ClassVar[Threshold.Op]
        OP_ABOVE: _ClassVar[Threshold.Op]
        OP_BELOW: _ClassVar[Threshold.Op]
        OP_OUTSIDE: _ClassVar[Threshold.Op]
    OP_UNSPECIFIED: Threshold.Op
    OP_ABOVE: Threshold.Op
    OP_BELOW: Threshold.Op
    OP_OUTSIDE: Threshold.Op
    OP_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    op: Threshold.Op
    low: float
    high: float
    duration: _duration_pb2.Duration
    def __init__(self, op: _Optional[_Union[Threshold.Op, str]] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Absence(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: int
    def __init__(self, seconds: _Optional[int] = ...) -> None: ...

class RateOfChange(_message.Message):
    __slots__ = ("max_per_second",)
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    max_per_second: float
    def __init__(self, max_per_second: _Optional[float] = ...) -> None: ...

class Equals(_message.Message):
    __slots__ = ("bool_value", "string_value")
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    bool_value: bool
    string_value: str
    def __init__(self, bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ...) -> None: ...

class CreateRuleRequest(_message.Message):
    __slots__ = ("name", "sensor_id", "device_id", "threshold", "absence", "rate", "equals", "webhook_url", "webhook_secret", "command")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ABSENCE_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    name: str
    sensor_id: int
    device_id: int
    threshold: Threshold
    absence: Absence
    rate: RateOfChange
    equals: Equals
    webhook_url: str
    webhook_secret: str
    command: RuleCommand
    def __init__(self, name: _Optional[str] = ..., sensor_id: _Optional[int] = ..., device_id: _Optional[int] = ..., threshold: _Optional[_Union[Threshold, _Mapping]] = ..., absence: _Optional[_Union[Absence, _Mapping]] = ..., rate: _Optional[_Union[RateOfChange, _Mapping]] = ..., equals: _Optional[_Union[Equals, _Mapping]] = ..., webhook_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ..., command: _Optional[_Union[RuleCommand, _Mapping]] = ...) -> None: ...

class CreateRuleResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Rule
    def __init__(self, result: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class GetRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetRuleResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Rule
    def __init__(self, result: _Optional[_Union[Rule, _Mapping]] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "sensor_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    sensor_id: int
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., sensor_id: _Optional[int] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("result", "next_page_token")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    result: _containers.RepeatedCompositeFieldContainer[Rule]
    next_page_token: str
    def __init__(self, result: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class DeleteRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "rule_id", "rule_name", "sensor_id", "device_id", "state", "value", "fire_time", "resolve_time", "resolve_value", "acknowledged_by", "acknowledge_time", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Alert.State]
        STATE_FIRING: _ClassVar[Alert.State]
        STATE_RESOLVED: _ClassVar[Alert.State]
    STATE_UNSPECIFIED: Alert.State
    STATE_FIRING: Alert.State
    STATE_RESOLVED: Alert.State
    ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_NAME_FIELD_NUMBER: _ClassVar[int]
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_VALUE_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    rule_id: int
    rule_name: str
    sensor_id: int
    device_id: int
    state: Alert.State
    value: str
    fire_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    resolve_value: str
    acknowledged_by: int
    acknowledge_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., rule_id: _Optional[int] = ..., rule_name: _Optional[str] = ..., sensor_id: _Optional[int] = ..., device_id: _Optional[int] = ..., state: _Optional[_Union[Alert.State, str]] = ..., value: _Optional[str] = ..., fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_value: _Optional[str] = ..., acknowledged_by: _Optional[int] = ..., acknowledge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("event", "attempt", "status_code", "error", "time", "ok")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    event: str
    attempt: int
    status_code: int
    error: str
    time: _timestamp_pb2.Timestamp
    ok: bool
    def __init__(self, event: _Optional[str] = ..., attempt: _Optional[int] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ok: _Optional[bool] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "rule_id", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    rule_id: int
    state: Alert.State
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., rule_id: _Optional[int] = ..., state: _Optional[_Union[Alert.State, str]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("result", "next_page_token")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    result: _containers.RepeatedCompositeFieldContainer[Alert]
    next_page_token: str
    def __init__(self, result: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAlertRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAlertResponse(_message.Message):
    __slots__ = ("result", "deliveries")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    result: Alert
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, result: _Optional[_Union[Alert, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AcknowledgeAlertResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Alert
    def __init__(self, result: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("after_event_id",)
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    after_event_id: int
    def __init__(self, after_event_id: _Optional[int] = ...) -> None: ...

class WatchAlertsResponse(_message.Message):
    __slots__ = ("event_id", "event", "alert")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    event: str
    alert: Alert
    def __init__(self, event_id: _Optional[int] = ..., event: _Optional[str] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class SetSensorRetentionRequest(_message.Message):
    __slots__ = ("sensor_id", "raw")
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    sensor_id: int
    raw: _duration_pb2.Duration
    def __init__(self, sensor_id: _Optional[int] = ..., raw: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SetSensorRetentionResponse(_message.Message):
    __slots__ = ("raw", "overridden")
    RAW_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    raw: _duration_pb2.Duration
    overridden: bool
    def __init__(self, raw: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overridden: _Optional[bool] = ...) -> None: ...

class GetSensorRetentionRequest(_message.Message):
    __slots__ = ("sensor_id",)
    SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    sensor_id: int
    def __init__(self, sensor_id: _Optional[int] = ...) -> None: ...

class GetSensorRetentionResponse(_message.Message):
    __slots__ = ("raw", "overridden", "minute_rollups")
    RAW_FIELD_NUMBER: _ClassVar[int]
    OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    MINUTE_ROLLUPS_FIELD_NUMBER: _ClassVar[int]
    raw: _duration_pb2.Duration
    overridden: bool
    minute_rollups: _duration_pb2.Duration
    def __init__(self, raw: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., overridden: _Optional[bool] = ..., minute_rollups: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
