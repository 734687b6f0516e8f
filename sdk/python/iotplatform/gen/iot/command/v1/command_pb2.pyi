import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from iotplatform.gen.iot.ingest.v1 import ingest_pb2 as _ingest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_STATUS_UNSPECIFIED: _ClassVar[CommandStatus]
    COMMAND_STATUS_QUEUED: _ClassVar[CommandStatus]
    COMMAND_STATUS_SENT: _ClassVar[CommandStatus]
    COMMAND_STATUS_DELIVERED: _ClassVar[CommandStatus]
    COMMAND_STATUS_SUCCEEDED: _ClassVar[CommandStatus]
    COMMAND_STATUS_FAILED: _ClassVar[CommandStatus]
    COMMAND_STATUS_EXPIRED: _ClassVar[CommandStatus]
    COMMAND_STATUS_CANCELLED: _ClassVar[CommandStatus]
COMMAND_STATUS_UNSPECIFIED: CommandStatus
COMMAND_STATUS_QUEUED: CommandStatus
COMMAND_STATUS_SENT: CommandStatus
COMMAND_STATUS_DELIVERED: CommandStatus
COMMAND_STATUS_SUCCEEDED: CommandStatus
COMMAND_STATUS_FAILED: CommandStatus
COMMAND_STATUS_EXPIRED: CommandStatus
COMMAND_STATUS_CANCELLED: CommandStatus

class Command(_message.Message):
    __slots__ = ("id", "device_id", "name", "json_payload", "binary_payload", "status", "created_at", "expires_at", "history", "result", "edge")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    JSON_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    BINARY_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    device_id: int
    name: str
    json_payload: _struct_pb2.Value
    binary_payload: bytes
    status: CommandStatus
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[CommandEvent]
    result: _struct_pb2.Value
    edge: str
    def __init__(self, id: _Optional[int] = ..., device_id: _Optional[int] = ..., name: _Optional[str] = ..., json_payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., binary_payload: _Optional[bytes] = ..., status: _Optional[_Union[CommandStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[CommandEvent, _Mapping]]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., edge: _Optional[str] = ...) -> None: ...

class CommandEvent(_message.Message):
    __slots__ = ("status", "time", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: CommandStatus
    time: _timestamp_pb2.Timestamp
    detail: str
    def __init__(self, status: _Optional[_Union[CommandStatus, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class SendCommandRequest(_message.Message):
    __slots__ = ("device_id", "name", "json_payload", "binary_payload", "ttl", "wait")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    JSON_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    BINARY_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    name: str
    json_payload: _struct_pb2.Value
    binary_payload: bytes
    ttl: _duration_pb2.Duration
    wait: _duration_pb2.Duration
    def __init__(self, device_id: _Optional[int] = ..., name: _Optional[str] = ..., json_payload: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., binary_payload: _Optional[bytes] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SendCommandResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Command
    def __init__(self, result: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class GetCommandRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetCommandResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Command
    def __init__(self, result: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class ListCommandsRequest(_message.Message):
    __slots__ = ("device_id", "page_size", "page_token")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    page_size: int
    page_token: str
    def __init__(self, device_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCommandsResponse(_message.Message):
    __slots__ = ("result", "next_page_token")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    result: _containers.RepeatedCompositeFieldContainer[Command]
    next_page_token: str
    def __init__(self, result: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelCommandRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class CancelCommandResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Command
    def __init__(self, result: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class DeviceState(_message.Message):
    __slots__ = ("device_id", "online", "edge", "online_since", "last_seen", "reported", "reported_at", "desired", "desired_version", "desired_at")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    DESIRED_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESIRED_AT_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    online: bool
    edge: str
    online_since: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    reported: _struct_pb2.Struct
    reported_at: _timestamp_pb2.Timestamp
    desired: _struct_pb2.Struct
    desired_version: int
    desired_at: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[int] = ..., online: _Optional[bool] = ..., edge: _Optional[str] = ..., online_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reported: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., desired: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., desired_version: _Optional[int] = ..., desired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDeviceStateRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    def __init__(self, device_id: _Optional[int] = ...) -> None: ...

class GetDeviceStateResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: DeviceState
    def __init__(self, result: _Optional[_Union[DeviceState, _Mapping]] = ...) -> None: ...

class SetDesiredAttributesRequest(_message.Message):
    __slots__ = ("device_id", "desired")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    device_id: int
    desired: _struct_pb2.Struct
    def __init__(self, device_id: _Optional[int] = ..., desired: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetDesiredAttributesResponse(_message.Message):
    __slots__ = ("result", "command")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    result: DeviceState
    command: Command
    def __init__(self, result: _Optional[_Union[DeviceState, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class WatchDeviceStatesRequest(_message.Message):
    __slots__ = ("device_ids",)
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, device_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class WatchDeviceStatesResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: DeviceState
    def __init__(self, state: _Optional[_Union[DeviceState, _Mapping]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("readings", "ack", "response", "reported")
    READINGS_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    readings: _ingest_pb2.IngestStreamRequest
    ack: CommandAck
    response: CommandResponse
    reported: _struct_pb2.Struct
    def __init__(self, readings: _Optional[_Union[_ingest_pb2.IngestStreamRequest, _Mapping]] = ..., ack: _Optional[_Union[CommandAck, _Mapping]] = ..., response: _Optional[_Union[CommandResponse, _Mapping]] = ..., reported: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("readings_ack", "command", "error")
    READINGS_ACK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    readings_ack: _ingest_pb2.IngestStreamResponse
    command: Command
    error: _ingest_pb2.ItemError
    def __init__(self, readings_ack: _Optional[_Union[_ingest_pb2.IngestStreamResponse, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., error: _Optional[_Union[_ingest_pb2.ItemError, _Mapping]] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    def __init__(self, command_id: _Optional[int] = ...) -> None: ...

class CommandResponse(_message.Message):
    __slots__ = ("command_id", "success", "result", "message")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    command_id: int
    success: bool
    result: _struct_pb2.Value
    message: str
    def __init__(self, command_id: _Optional[int] = ..., success: _Optional[bool] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...
