"""A tiny multimodal projector (llama.cpp's `--mmproj`) for the tiny model, so that `llama-server`
reads images for real in tests, offline.

It is a LLaVA-style CLIP encoder (`clip.projector_type` "mlp") of one block, 28x28 images and 14x14
patches: every image, whatever its size (llama.cpp scales it), becomes `IMAGE_TOKENS` = 4
embeddings of the text model's width. All weights are zero, so those embeddings are zero vectors:
the tiny model's answer depends only on the token before it (tiny_model.py), so it answers as it
does without the image, and the image shows in the prompt tokens the server reports.

Run `python -m tests.llama.tiny_projector MODEL.gguf OUT.gguf` to write the projector of a model file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

IMAGE_SIZE = 28
PATCH_SIZE = 14
# Patches per image: what one image adds to a prompt.
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
VISION_WIDTH = 32
VISION_FEED_FORWARD = 32


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as error:  # pragma: no cover - the dev extra installs it
        raise RuntimeError("Writing the tiny projector needs the gguf package (pip install gguf).") from error
    return gguf


def text_width(model_path: Path) -> int:
    """The embedding width of a llama-architecture GGUF model: what the projector must produce."""
    reader = _gguf().GGUFReader(str(model_path))
    return int(reader.fields["llama.embedding_length"].parts[-1][0])


def write_tiny_projector(path: Path, model_path: Path) -> int:
    """Writes the projector of the model at `model_path` to `path`; returns the tokens an image takes."""
    import numpy as np

    gguf = _gguf()
    width = text_width(model_path)
    writer = gguf.GGUFWriter(str(path), arch="clip")
    writer.add_name("tiny-test-projector")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", VISION_WIDTH)
    writer.add_uint32("clip.vision.feed_forward_length", VISION_FEED_FORWARD)
    writer.add_uint32("clip.vision.projection_dim", width)
    writer.add_uint32("clip.vision.block_count", 1)
    writer.add_uint32("clip.vision.attention.head_count", 1)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def zeros(*shape: int) -> Any:
        return np.zeros(shape, dtype=np.float32)

    def ones(*shape: int) -> Any:
        return np.ones(shape, dtype=np.float32)

    # numpy shapes are ggml's dimensions reversed.
    writer.add_tensor("v.patch_embd.weight", zeros(VISION_WIDTH, 3, PATCH_SIZE, PATCH_SIZE))
    writer.add_tensor("v.class_embd", zeros(VISION_WIDTH))
    writer.add_tensor("v.position_embd.weight", zeros(IMAGE_TOKENS + 1, VISION_WIDTH))
    writer.add_tensor("v.pre_ln.weight", ones(VISION_WIDTH))
    writer.add_tensor("v.pre_ln.bias", zeros(VISION_WIDTH))
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        writer.add_tensor(f"v.blk.0.{name}.weight", zeros(VISION_WIDTH, VISION_WIDTH))
        writer.add_tensor(f"v.blk.0.{name}.bias", zeros(VISION_WIDTH))
    for name in ("ln1", "ln2"):
        writer.add_tensor(f"v.blk.0.{name}.weight", ones(VISION_WIDTH))
        writer.add_tensor(f"v.blk.0.{name}.bias", zeros(VISION_WIDTH))
    writer.add_tensor("v.blk.0.ffn_up.weight", zeros(VISION_FEED_FORWARD, VISION_WIDTH))
    writer.add_tensor("v.blk.0.ffn_up.bias", zeros(VISION_FEED_FORWARD))
    writer.add_tensor("v.blk.0.ffn_down.weight", zeros(VISION_WIDTH, VISION_FEED_FORWARD))
    writer.add_tensor("v.blk.0.ffn_down.bias", zeros(VISION_WIDTH))
    writer.add_tensor("mm.0.weight", zeros(width, VISION_WIDTH))
    writer.add_tensor("mm.0.bias", zeros(width))
    writer.add_tensor("mm.2.weight", zeros(width, width))
    writer.add_tensor("mm.2.bias", zeros(width))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return IMAGE_TOKENS


if __name__ == "__main__":
    write_tiny_projector(Path(sys.argv[2]), Path(sys.argv[1]))
