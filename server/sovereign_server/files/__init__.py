"""Files, vector stores and search: uploads streamed to a content-addressed file directory,
background indexing (text extraction, chunking, optional embeddings), full-text and hybrid search,
and the `file_search` tool that runs use."""

from sovereign_server.files.embeddings import Embedder, EmbeddingsConfig, OpenAIEmbedder
from sovereign_server.files.search import SearchHit, SearchRequest, SearchService
from sovereign_server.files.service import DEFAULT_MAX_UPLOAD_BYTES, FileService, FileSettings

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "Embedder",
    "EmbeddingsConfig",
    "FileService",
    "FileSettings",
    "OpenAIEmbedder",
    "SearchHit",
    "SearchRequest",
    "SearchService",
]
