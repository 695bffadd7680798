"""The JSON shapes of the files and vector stores API (`file_service.proto`,
`vector_store_service.proto`) that protobuf cannot type; merged into `json_shapes`."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def _closed(properties: dict[str, Schema], *required: str) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _fields(message: str, fields: dict[str, Schema]) -> dict[str, Schema]:
    return {f"{message}.{name}": schema for name, schema in fields.items()}


_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_NULLABLE_TIME: Schema = {"type": ["integer", "null"], "minimum": 0, "description": "Unix seconds, or null."}
_LIST_PAGE: dict[str, Schema] = {"limit": {"minimum": 1, "maximum": 100}, "order": _enum("asc", "desc")}
_LIST_ENVELOPE: dict[str, Schema] = {
    "object": {"const": "list"},
    "first_id": _NULLABLE_STRING,
    "last_id": _NULLABLE_STRING,
}
_FILE_STATUS = _enum("in_progress", "completed", "cancelled", "failed")
_ATTRIBUTES_OR_NULL: Schema = {"anyOf": [_ref("Attributes"), {"type": "null"}]}

COMPONENTS: dict[str, Schema] = {
    "Attributes": {
        "type": "object",
        "description": "At most 16 keys of up to 64 characters; strings up to 512 characters, numbers or booleans.",
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {
            "oneOf": [{"type": "string", "maxLength": 512}, {"type": "number"}, {"type": "boolean"}]
        },
    },
    "ChunkingStrategyInput": {
        "oneOf": [
            _closed({"type": {"const": "auto"}}, "type"),
            _closed({"type": {"const": "static"}, "static": _ref("StaticChunking")}, "type", "static"),
        ]
    },
    "StaticChunking": _closed(
        {
            "max_chunk_size_tokens": {"type": "integer", "minimum": 100, "maximum": 4096},
            "chunk_overlap_tokens": {"type": "integer", "minimum": 0},
        },
        "max_chunk_size_tokens",
        "chunk_overlap_tokens",
    ),
    "ChunkingStrategy": _closed({"type": {"const": "static"}, "static": _ref("StaticChunking")}, "type", "static"),
    "VectorStoreExpiration": _closed(
        {"anchor": {"const": "last_active_at"}, "days": {"type": "integer", "minimum": 1, "maximum": 365}},
        "anchor",
        "days",
    ),
    "FileLastError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": _enum("server_error", "unsupported_file", "invalid_file"),
            "message": {"type": "string"},
        },
    },
    "ComparisonFilter": _closed(
        {
            "type": _enum("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"),
            "key": {"type": "string"},
            "value": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}},
                ]
            },
        },
        "type",
        "key",
        "value",
    ),
    "CompoundFilter": _closed(
        {
            "type": _enum("and", "or"),
            "filters": {"type": "array", "items": {"oneOf": [_ref("ComparisonFilter"), _ref("CompoundFilter")]}},
        },
        "type",
        "filters",
    ),
    "SearchQuery": {
        "oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}],
    },
    "SearchRankingOptions": _closed(
        {
            "ranker": _enum("none", "auto", "default-2024-11-15"),
            "score_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        }
    ),
    # The multipart body of `POST /v1/files`.
    "FileUpload": {
        "type": "object",
        "required": ["file", "purpose"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "purpose": _enum("assistants", "batch", "fine-tune", "vision", "user_data", "evals"),
            "expires_after[anchor]": {"const": "created_at"},
            "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
        },
    },
}

FIELDS: dict[str, Schema] = {
    **_fields(
        "File",
        {
            "object": {"const": "file"},
            "expires_at": _NULLABLE_TIME,
            "purpose": _enum("assistants", "batch", "fine-tune", "vision", "user_data", "evals"),
            "status": _enum("uploaded", "processed", "error"),
            "status_details": _NULLABLE_STRING,
        },
    ),
    **_fields("ListFilesRequest", {"limit": {"minimum": 1, "maximum": 10000}, "order": _enum("asc", "desc")}),
    **_fields("ListFilesResponse", _LIST_ENVELOPE),
    **_fields(
        "VectorStore",
        {
            "object": {"const": "vector_store"},
            "name": _NULLABLE_STRING,
            "status": _enum("expired", "in_progress", "completed"),
            "expires_after": {"anyOf": [_ref("VectorStoreExpiration"), {"type": "null"}]},
            "expires_at": _NULLABLE_TIME,
            "last_active_at": _NULLABLE_TIME,
            "metadata": _ref("Metadata"),
        },
    ),
    **_fields(
        "VectorStoreFile",
        {
            "object": {"const": "vector_store.file"},
            "status": _FILE_STATUS,
            "last_error": {"anyOf": [_ref("FileLastError"), {"type": "null"}]},
            "chunking_strategy": _ref("ChunkingStrategy"),
            "attributes": _ATTRIBUTES_OR_NULL,
        },
    ),
    **_fields("VectorStoreFileBatch", {"object": {"const": "vector_store.files_batch"}, "status": _FILE_STATUS}),
    **_fields("TextPart", {"type": {"const": "text"}}),
    **_fields("SearchResult", {"attributes": _ATTRIBUTES_OR_NULL, "score": {"minimum": 0, "maximum": 1}}),
    **_fields(
        "CreateVectorStoreRequest",
        {
            "file_ids": {"maxItems": 500},
            "name": {"maxLength": 256},
            "description": {"maxLength": 512},
            "expires_after": _ref("VectorStoreExpiration"),
            "chunking_strategy": _ref("ChunkingStrategyInput"),
            "metadata": _ref("Metadata"),
        },
    ),
    **_fields("ListVectorStoresRequest", _LIST_PAGE),
    **_fields("ListVectorStoresResponse", _LIST_ENVELOPE),
    **_fields(
        "ModifyVectorStoreRequest",
        {
            "name": {"type": ["string", "null"], "maxLength": 256},
            "expires_after": {"anyOf": [_ref("VectorStoreExpiration"), {"type": "null"}]},
            "metadata": _ref("Metadata"),
        },
    ),
    **_fields(
        "CreateVectorStoreFileRequest",
        {
            "file_id": {"minLength": 1},
            "chunking_strategy": _ref("ChunkingStrategyInput"),
            "attributes": _ATTRIBUTES_OR_NULL,
        },
    ),
    **_fields(
        "ListVectorStoreFilesRequest",
        {**_LIST_PAGE, "filter": _enum("in_progress", "completed", "failed", "cancelled")},
    ),
    **_fields("ListVectorStoreFilesResponse", _LIST_ENVELOPE),
    **_fields("UpdateVectorStoreFileRequest", {"attributes": _ATTRIBUTES_OR_NULL}),
    **_fields(
        "VectorStoreFileContent",
        {"object": {"const": "vector_store.file_content.page"}, "next_page": {"type": "null"}},
    ),
    **_fields(
        "BatchFile",
        {
            "file_id": {"minLength": 1},
            "chunking_strategy": _ref("ChunkingStrategyInput"),
            "attributes": _ATTRIBUTES_OR_NULL,
        },
    ),
    **_fields(
        "CreateFileBatchRequest",
        {
            "file_ids": {"minItems": 1, "maxItems": 2000},
            "files": {"minItems": 1, "maxItems": 2000},
            "chunking_strategy": _ref("ChunkingStrategyInput"),
            "attributes": _ATTRIBUTES_OR_NULL,
        },
    ),
    **_fields(
        "ListFileBatchFilesRequest",
        {**_LIST_PAGE, "filter": _enum("in_progress", "completed", "failed", "cancelled")},
    ),
    **_fields(
        "SearchVectorStoreRequest",
        {
            "query": _ref("SearchQuery"),
            "max_num_results": {"minimum": 1, "maximum": 50},
            "filters": {"oneOf": [_ref("ComparisonFilter"), _ref("CompoundFilter")]},
            "ranking_options": _ref("SearchRankingOptions"),
        },
    ),
    **_fields(
        "SearchVectorStoreResponse",
        {"object": {"const": "vector_store.search_results.page"}, "next_page": {"type": "null"}},
    ),
}

WHOLE: frozenset[str] = frozenset(
    {
        "File",
        "ListFilesResponse",
        "VectorStore",
        "FileCounts",
        "VectorStoreFile",
        "VectorStoreFileBatch",
        "ListVectorStoresResponse",
        "ListVectorStoreFilesResponse",
        "VectorStoreFileContent",
        "SearchVectorStoreResponse",
        "SearchResult",
        "TextPart",
    }
)

# Routes whose request is a raw body (a client stream of `google.api.HttpBody`), by method name:
# the content type and the schema of the form it carries.
RAW_REQUESTS: dict[str, tuple[str, Schema]] = {"UploadFile": ("multipart/form-data", _ref("FileUpload"))}

# Routes whose response is raw bytes (a stream of `google.api.HttpBody`), by method name.
RAW_RESPONSES: dict[str, tuple[str, Schema]] = {
    "GetFileContent": ("application/octet-stream", {"type": "string", "format": "binary"}),
}
