"""Builds the OpenAPI 3.1 document of the JSON API from the Envoy descriptor set.

The document describes what the gateway really serves: the `google.api.http` rules of our
services, and the JSON the transcoder prints with `preserve_proto_field_names` (proto field names
as keys). Fields marked `(google.api.field_behavior) = REQUIRED` are required; what protobuf cannot
type (the JSON shapes of `Struct` / `Value` fields, OpenAI's enums and limits, the bodies of the
`HttpBody` routes) comes from `json_shapes.py`. It is derived, never edited: `tools/build_protos.py`
rewrites it with the descriptor set, and the bytes depend on the descriptors and `json_shapes.py`
only (sorted keys, no timestamps).

Usage: python tools/openapi_from_descriptors.py envoy/descriptors.pb envoy/openapi.json
"""

from __future__ import annotations

import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2
from json_shapes import COMPONENTS, FIELDS, HTTP_BODY_EVENTS, HTTP_BODY_RESPONSES, SSE_EVENT, WHOLE
from json_shapes_files import RAW_REQUESTS, RAW_RESPONSES

Schema = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

TITLE = "Sovereign Assistant API"
VERSION = "v1"
# Services of these packages get no OpenAPI paths: `GET /health` is operational, not the API.
SKIPPED_PACKAGES = ("grpc.", "google.")
HTTP_BODY = "google.api.HttpBody"
# Well-known types whose JSON is free-form: `json_shapes.FIELDS` must say what each such field holds.
FREE_FORM = ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue")

# Well-known types print as native JSON (proto3 JSON mapping), not as their message structure.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value, including null."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.NullValue": {"type": "null"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "contentEncoding": "base64"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295},
    # 64-bit integers print as JSON strings (the transcoder has no option against it).
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
}

_SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_DOUBLE: {"type": "number"},
    FieldProto.TYPE_FLOAT: {"type": "number"},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    FieldProto.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 4294967295},
    FieldProto.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

# The gateway's error body (built by its Lua filter and local replies), for every error response.
ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "OpenAI's error object; every non-2xx response carries it.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "`invalid_request_error` or `server_error`."},
                "param": {"type": ["string", "null"], "description": "The request field at fault."},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

# Source-info paths: FileDescriptorProto.message_type = 4, .service = 6; DescriptorProto.field = 2,
# .nested_type = 3, .enum_type = 4; ServiceDescriptorProto.method = 2.
_MESSAGE, _SERVICE, _FIELD, _NESTED, _METHOD = 4, 6, 2, 3, 2


@dataclass(frozen=True)
class _Message:
    full_name: str
    proto: descriptor_pb2.DescriptorProto
    package: str
    comment: str
    field_comments: dict[str, str]


@dataclass(frozen=True)
class _Method:
    service: str
    proto: descriptor_pb2.MethodDescriptorProto
    comment: str
    rule: http_pb2.HttpRule


class _Descriptors:
    """Every message, enum and HTTP-mapped method of a descriptor set, by fully qualified name."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, _Message] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.methods: list[_Method] = []
        self.services: dict[str, str] = {}
        for file in descriptor_set.file:
            comments = {
                tuple(location.path): _clean(location.leading_comments) for location in file.source_code_info.location
            }
            prefix = f".{file.package}" if file.package else ""
            for index, message in enumerate(file.message_type):
                self._add_message(file.package, prefix, message, (_MESSAGE, index), comments)
            for enum in file.enum_type:
                self.enums[f"{prefix}.{enum.name}"] = enum
            if file.package.startswith(SKIPPED_PACKAGES):
                continue
            for s_index, service in enumerate(file.service):
                service_name = f"{file.package}.{service.name}"
                self.services[service_name] = comments.get((_SERVICE, s_index), "")
                for m_index, method in enumerate(service.method):
                    if not method.options.HasExtension(annotations_pb2.http):
                        continue
                    rule = method.options.Extensions[annotations_pb2.http]
                    comment = comments.get((_SERVICE, s_index, _METHOD, m_index), "")
                    self.methods.append(_Method(service_name, method, comment, rule))

    def _add_message(
        self,
        package: str,
        prefix: str,
        message: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        full_name = f"{prefix}.{message.name}"
        field_comments = {
            field.name: comments.get((*path, _FIELD, index), "") for index, field in enumerate(message.field)
        }
        self.messages[full_name] = _Message(full_name, message, package, comments.get(path, ""), field_comments)
        for index, nested in enumerate(message.nested_type):
            self._add_message(package, full_name, nested, (*path, _NESTED, index), comments)
        for enum in message.enum_type:
            self.enums[f"{full_name}.{enum.name}"] = enum


def _is_required(field: FieldProto) -> bool:
    behaviors = field.options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _refs(value: Any) -> set[str]:
    """The component names `value` refers to with `#/components/schemas/<name>`."""
    if isinstance(value, dict):
        found = {value["$ref"].rsplit("/", 1)[-1]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_refs(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(item) for item in value))
    return set()


def _clean(comment: str) -> str:
    """A proto comment as Markdown: indentation removed, paragraphs kept."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.strip("\n").split("\n")]
    return "\n".join(lines).strip()


def _summary(comment: str) -> str:
    first_line = comment.split("\n", 1)[0].strip()
    return first_line.rstrip(".")


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class _Builder:
    def __init__(self, descriptors: _Descriptors) -> None:
        self.d = descriptors
        self.components: dict[str, Schema] = {"ErrorResponse": ERROR_SCHEMA, **copy.deepcopy(COMPONENTS)}

    # Schemas ----------------------------------------------------------------------------------

    def component_name(self, full_name: str) -> str:
        message = self.d.messages[full_name]
        relative = full_name[len(message.package) + 2 :] if message.package else full_name[1:]
        if message.package.startswith(("sovereign_assistant.", "grpc.", "google.")) or not message.package:
            return relative
        return f"{message.package}.{relative}"

    def ref_by_name(self, name: str) -> Schema:
        """A reference to the message whose component name is `name`, built if needed."""
        full_names = [full for full in self.d.messages if self.component_name(full) == name]
        if len(full_names) != 1:
            raise ValueError(f"json_shapes names {name!r}, which is not one message of the descriptor set")
        return self.ref(full_names[0])

    def complete(self, paths: Schema) -> None:
        """Builds the messages that only `json_shapes` refers to (by component name)."""
        while missing := sorted(_refs([paths, self.components]) - set(self.components)):
            for name in missing:
                self.ref_by_name(name)

    def ref(self, full_name: str) -> Schema:
        if full_name.lstrip(".") in WELL_KNOWN:
            return dict(WELL_KNOWN[full_name.lstrip(".")])
        name = self.component_name(full_name)
        if name not in self.components:
            # Reserve the name first: recursive messages refer to themselves.
            self.components[name] = {}
            self.components[name] = self.message_schema(full_name)
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(self, full_name: str, exclude: frozenset[str] = frozenset()) -> Schema:
        message = self.d.messages[full_name]
        name = self.component_name(full_name)
        fields = [field for field in message.proto.field if field.name not in exclude]
        properties = {
            field.name: self.field_schema(field, message.field_comments.get(field.name, ""), f"{name}.{field.name}")
            for field in fields
        }
        schema: Schema = {"type": "object", "properties": properties}
        if name in WHOLE:
            required = [field.name for field in fields]
        else:
            required = [field.name for field in fields if _is_required(field)]
        if required:
            schema["required"] = required
        if message.comment:
            schema["description"] = message.comment
        return schema

    def field_schema(self, field: FieldProto, comment: str = "", key: str = "") -> Schema:
        entry = self.d.messages.get(field.type_name) if field.type == FieldProto.TYPE_MESSAGE else None
        shape = FIELDS.get(key)
        if shape is not None and (
            field.type_name.lstrip(".") in FREE_FORM or (entry and entry.proto.options.map_entry)
        ):
            schema: Schema = copy.deepcopy(shape)
        elif field.type_name.lstrip(".") in FREE_FORM:
            raise ValueError(f"{key} is a {field.type_name.lstrip('.')}: say what JSON it holds in json_shapes.FIELDS")
        elif entry is not None and entry.proto.options.map_entry:
            value_field = next(f for f in entry.proto.field if f.name == "value")
            schema = {"type": "object", "additionalProperties": self.single_schema(value_field)}
        elif field.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": self.single_schema(field)}
        else:
            # OpenAI's enums and limits on a scalar, or a shape on a typed message field.
            schema = {**self.single_schema(field), **copy.deepcopy(shape or {})}
        if comment:
            if "$ref" in schema:
                # Siblings of `$ref` are allowed in OpenAPI 3.1, but some renderers drop them.
                schema = {"allOf": [schema]}
            schema["description"] = comment
        return schema

    def single_schema(self, field: FieldProto) -> Schema:
        if field.type == FieldProto.TYPE_MESSAGE or field.type == FieldProto.TYPE_GROUP:
            return self.ref(field.type_name)
        if field.type == FieldProto.TYPE_ENUM:
            if field.type_name.lstrip(".") in WELL_KNOWN:
                return dict(WELL_KNOWN[field.type_name.lstrip(".")])
            enum = self.d.enums[field.type_name]
            return {"type": "string", "enum": [value.name for value in enum.value]}
        return dict(_SCALARS[field.type])

    # Paths ------------------------------------------------------------------------------------

    def operation(self, method: _Method) -> tuple[str, str, Schema]:
        rule = method.rule
        verb = rule.WhichOneof("pattern")
        if verb is None or verb == "custom":
            verb, template = rule.custom.kind.lower(), rule.custom.path
        else:
            template = getattr(rule, verb)
        # `{name=segments/*}` binds like `{name}`; OpenAPI knows only the latter.
        path = re.sub(r"\{([^}=]+)=[^}]*\}", r"{\1}", template)
        path_fields = re.findall(r"\{([^}]+)\}", path)
        request = self.d.messages[method.proto.input_type]
        by_name = {field.name: field for field in request.proto.field}

        operation: Schema = {
            "operationId": _lower_camel(method.proto.name),
            "tags": [method.service.rsplit(".", 1)[-1]],
            "summary": _summary(method.comment) or method.proto.name,
        }
        if method.comment:
            operation["description"] = method.comment

        parameters: list[Schema] = []
        for name in path_fields:
            field = by_name.get(name)
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": self.single_schema(field) if field else {"type": "string"},
                    **self._description(request, name),
                }
            )
        bound = set(path_fields)
        if rule.body == "*":
            bound |= set(by_name)
        elif rule.body:
            bound.add(rule.body)
        for field in request.proto.field:
            # Only scalars (and repeated scalars) can come from the query string.
            if field.name in bound or field.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP):
                continue
            parameters.append(
                {
                    "name": field.name,
                    "in": "query",
                    "required": False,
                    "schema": self.field_schema(field, key=f"{self.component_name(request.full_name)}.{field.name}"),
                    **self._description(request, field.name),
                }
            )
        if parameters:
            operation["parameters"] = parameters

        if method.proto.input_type.lstrip(".") == HTTP_BODY:
            # A raw body (an upload), streamed to the server as it arrives.
            content_type, form = RAW_REQUESTS[method.proto.name]
            operation["requestBody"] = {"required": True, "content": {content_type: {"schema": copy.deepcopy(form)}}}
        elif rule.body == "*":
            body_schema = (
                self.message_schema(request.full_name, frozenset(path_fields))
                if path_fields
                else self.ref(request.full_name)
            )
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        elif rule.body:
            body_field = by_name[rule.body]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self.single_schema(body_field)}},
            }

        operation["responses"] = {
            "200": self.response(method),
            "default": {
                "description": "An error, as OpenAI shapes it.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            },
        }
        return path, verb, operation

    def _description(self, message: _Message, field_name: str) -> Schema:
        comment = message.field_comments.get(field_name, "")
        return {"description": comment} if comment else {}

    def response(self, method: _Method) -> Schema:
        output = method.proto.output_type.lstrip(".")
        if output == HTTP_BODY and method.proto.name in RAW_RESPONSES:
            content_type, raw = RAW_RESPONSES[method.proto.name]
            return {"description": "The bytes, streamed.", "content": {content_type: {"schema": copy.deepcopy(raw)}}}
        if output == HTTP_BODY:
            # The server writes these bytes itself; Envoy passes them through.
            body = HTTP_BODY_RESPONSES.get(method.proto.name)
            events = HTTP_BODY_EVENTS.get(method.proto.name)
            return {
                "description": "The resource as JSON, or OpenAI's Server-Sent Events when `stream` is true.",
                "content": {
                    "application/json": {"schema": self.ref_by_name(body) if body else {"type": "object"}},
                    "text/event-stream": {
                        "schema": {
                            **copy.deepcopy(events or SSE_EVENT),
                            "description": "One event: `event: <name>` / `data: <json>`; the stream ends with "
                            + ("the body (no `done` event)." if events else "`event: done` / `data: [DONE]`."),
                        }
                    },
                },
            }
        schema = self.ref(method.proto.output_type)
        if method.proto.server_streaming:
            # The transcoder prints a server stream as one JSON array of messages.
            schema = {"type": "array", "items": schema}
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def build_openapi(descriptor_set: descriptor_pb2.FileDescriptorSet) -> Schema:
    """The OpenAPI document (a JSON-ready dict) of the HTTP-mapped methods in `descriptor_set`."""
    descriptors = _Descriptors(descriptor_set)
    builder = _Builder(descriptors)
    paths: dict[str, dict[str, Schema]] = {}
    for method in descriptors.methods:
        path, verb, operation = builder.operation(method)
        paths.setdefault(path, {})[verb] = operation
    builder.complete(paths)
    tags = [
        {"name": name.rsplit(".", 1)[-1], **({"description": comment} if comment else {})}
        for name, comment in sorted(descriptors.services.items(), key=lambda item: item[0].rsplit(".", 1)[-1])
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "OpenAI's Assistants API (v2), Responses API and Conversations API, self-hosted, on "
            "one store. Generated from the protos' "
            "`google.api.http` rules; the JSON keys are the proto field names.",
        },
        # Relative: the document is served by the gateway it describes.
        "servers": [{"url": "/"}],
        "tags": tags,
        "paths": paths,
        "components": {"schemas": builder.components},
    }


def render_openapi(descriptor_set: Path) -> str:
    """The document as the bytes `write_openapi` writes: sorted keys, two-space indent, final newline."""
    parsed = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    return json.dumps(build_openapi(parsed), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(descriptor_set: Path, out: Path) -> None:
    """Writes the OpenAPI document for `descriptor_set` to `out` (unchanged files are not touched)."""
    text = render_openapi(descriptor_set)
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    write_openapi(Path(sys.argv[1]), Path(sys.argv[2]))
