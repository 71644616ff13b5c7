"""Response models of the ops API, so the OpenAPI document types every response (ADR 0801).

Proto messages are answered the way ops_api.wire.to_json writes them, so their models are derived from the same
descriptors: integers as integers, enums as their names, Timestamp and Date as ISO text (null when unset), Duration
as seconds, a singular message null when unset. Deriving them (instead of writing them by hand) keeps the document in
step with the protos; FastAPI checks every answer against its model.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel, Field, create_model

_INTEGERS = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
}  # fmt: skip
_TEXT_MESSAGES = {"google.protobuf.Timestamp", "carbon.common.v1.Date"}
_names: dict[str, str] = {}


class Problem(BaseModel):
    """RFC 9457 problem details, with the services' reason code."""

    type: str = Field(description="urn:carbon-account:problem:<reason in lower case>")
    title: str = Field(description="the HTTP status phrase")
    status: int
    detail: str = Field(description="what went wrong, in words; names the field at fault for bad input")
    instance: str = Field(description="the request path")
    reason: str = Field(description="the reason code (e.g. ROLE_NOT_ALLOWED, INSUFFICIENT_POINTS)")
    domain: str = Field(description="which service decided (ops, identity, ledger, ...)")
    metadata: dict[str, str] = Field(description="machine-readable details of the reason")
    request_id: str = Field(description="the X-Request-Id this answer belongs to")


def _model_name(descriptor: Descriptor) -> str:
    """The message's short name, or with its package's service prefixed when two packages share it."""
    name = descriptor.name
    taken = _names.setdefault(name, descriptor.full_name)
    if taken == descriptor.full_name:
        return name
    return descriptor.full_name.split(".")[1].capitalize() + name


def _value_type(field: Any) -> Any:
    if field.type in _INTEGERS:
        return int
    if field.type in {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}:
        return float
    if field.type == FieldDescriptor.TYPE_BOOL:
        return bool
    if field.type == FieldDescriptor.TYPE_ENUM:
        return Literal[tuple(value.name for value in field.enum_type.values)]  # type: ignore[misc]
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return str
    full_name = field.message_type.full_name
    if full_name in _TEXT_MESSAGES:
        return str
    if full_name == "google.protobuf.Duration":
        return float
    return message_model(field.message_type)


def _field_type(field: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        return dict[str, _value_type(field.message_type.fields_by_name["value"])]  # type: ignore[misc]
    if field.is_repeated:
        return list[_value_type(field)]  # type: ignore[misc]
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _value_type(field) | None
    return _value_type(field)


@cache
def message_model(descriptor: Descriptor) -> type[BaseModel]:
    """The model of a proto message as ops_api.wire.to_json writes it."""
    fields: dict[str, Any] = {field.name: (_field_type(field), ...) for field in descriptor.fields}
    return create_model(_model_name(descriptor), __doc__=f"proto {descriptor.full_name}", **fields)


def envelope(name: str, doc: str, **fields: Any) -> type[BaseModel]:
    """A response object of named fields; a proto message class as a type stands for its model."""
    typed: dict[str, Any] = {key: (_python_type(value), ...) for key, value in fields.items()}
    return create_model(name, __doc__=doc, **typed)


def _python_type(value: Any) -> Any:
    descriptor = getattr(value, "DESCRIPTOR", None)
    if isinstance(descriptor, Descriptor):
        return message_model(descriptor)
    origin = getattr(value, "__origin__", None)
    if origin is list:
        return list[_python_type(value.__args__[0])]  # type: ignore[misc]
    return value


def page(name: str, key: str, item: Any, doc: str) -> type[BaseModel]:
    """One page of a list: the items under `key` and the next page's token ("" on the last page)."""
    return envelope(name, doc, **{key: list[item], "next_page_token": str})
