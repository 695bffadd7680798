"""A tiny llama-architecture GGUF model whose answers are fixed by its weights, for exact tests against llama-server.

How it works: every attention and feed-forward output projection is zero, so each layer adds nothing and the final
hidden state is the current token's embedding. Embeddings are one-hot, and the output matrix maps each token to a
chosen successor with a huge logit margin. Generation is therefore a deterministic chain that no sampling setting can
change: the prompt's last token picks the first answer token, each answer token picks the next, and the last one picks
`<|im_end|>`. The chat template (ChatML with Qwen-style `<tool_call>` tool calls, which llama.cpp's template analyser
recognises) ends the generation prompt with a control token that selects the chain:

- the last message is a tool result: `TinyModelAnswers.after_tool_reply`;
- tools are offered: a `<tool_call>` of `get_price` with `{"ticker": "AAPL"}` (offer `TOOL`, or a tool of that name
  whose parameters accept that object: with `tool_choice` "auto" llama-server's lazy grammar checks the call);
- the last message contains `[[forever]]`: "tick tock tick tock ..." without end (stops at max_tokens or the context);
- the last message contains `[[long]]`: `long_reply`, a chain of `long_token_count` distinct tokens;
- otherwise: `plain_reply`.

Because the next token depends only on the current one, all tokens of a finite chain are distinct vocabulary entries
(whole words; prompt text itself tokenizes to single bytes, the vocabulary has one merge only).

Run `python -m tests.llama.tiny_model OUT.gguf` to write the model file.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

LONG_MARKER = "[[long]]"
FOREVER_MARKER = "[[forever]]"

TOOL_NAME = "get_price"
TOOL_ARGUMENTS = '{"ticker": "AAPL"}'
TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Look up the latest price of a stock.",
        "parameters": {
            "type": "object",
            "properties": {"ticker": {"type": "string"}},
            "required": ["ticker"],
        },
    },
}

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
# Control tokens the chat template puts after "<|im_start|>assistant\n"; each starts one answer chain.
TRIGGER_REPLY = "<|tiny_reply|>"
TRIGGER_CALL = "<|tiny_call|>"
TRIGGER_AFTER_TOOL = "<|tiny_after_tool|>"
TRIGGER_LONG = "<|tiny_long|>"
TRIGGER_FOREVER = "<|tiny_forever|>"

PLAIN_PIECES = ("Hello", " from", " the", " tiny", " model.")
CALL_PIECES = ("<tool_call>\n", '{"name": "' + TOOL_NAME + '", "arguments": ', TOOL_ARGUMENTS, "}\n</tool_call>")
AFTER_TOOL_PIECES = ("The", " price", " is", " ready.")
LONG_PIECES = ("Count:", *(f" {number}" for number in range(1, 61)), " done.")
FOREVER_PIECES = ("tick", " tock", " tick")  # " tick" -> " tock" closes the cycle

CONTEXT_LENGTH = 2048
HEAD_DIM = 32
FEED_FORWARD = 32
# sqrt(n_embd) (the RMS norm of a one-hot vector) times this is the winning logit; every other logit is zero.
SUCCESSOR_WEIGHT = 100.0

# Qwen2.5's ChatML template with tools (a format llama.cpp's template analyser turns into a `<tool_call>` JSON parser),
# without its default system prompt, and with a trigger token after the generation prompt.
CHAT_TEMPLATE = (
    r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages | length > 0 and messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        ~ "You are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        ~ "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        ~ "<args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages | length > 0 and messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first)
        or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- set last = namespace(role='', text='') %}
    {%- for message in messages %}
        {%- set last.role = message.role %}
        {%- if message.content is string %}
            {%- set last.text = message.content %}
        {%- else %}
            {%- set last.text = '' %}
        {%- endif %}
    {%- endfor %}
    {%- if last.role == 'tool' %}
        {{- 'TRIGGER_AFTER_TOOL' }}
    {%- elif tools %}
        {{- 'TRIGGER_CALL' }}
    {%- elif 'FOREVER_MARKER' in last.text %}
        {{- 'TRIGGER_FOREVER' }}
    {%- elif 'LONG_MARKER' in last.text %}
        {{- 'TRIGGER_LONG' }}
    {%- else %}
        {{- 'TRIGGER_REPLY' }}
    {%- endif %}
{%- endif %}
""".replace("TRIGGER_AFTER_TOOL", TRIGGER_AFTER_TOOL)
    .replace("TRIGGER_CALL", TRIGGER_CALL)
    .replace("FOREVER_MARKER", FOREVER_MARKER)
    .replace("TRIGGER_FOREVER", TRIGGER_FOREVER)
    .replace("LONG_MARKER", LONG_MARKER)
    .replace("TRIGGER_LONG", TRIGGER_LONG)
    .replace("TRIGGER_REPLY", TRIGGER_REPLY)
)


@dataclass(frozen=True)
class TinyModelAnswers:
    """The exact answers of the tiny model. Token counts are generated text tokens (without the end token)."""

    plain_reply: str
    plain_token_count: int
    tool_name: str
    tool_arguments: str
    tool_call_text: str
    tool_call_token_count: int
    after_tool_reply: str
    after_tool_token_count: int
    long_marker: str
    long_reply: str
    long_pieces: tuple[str, ...]
    long_token_count: int
    forever_marker: str
    forever_pieces: tuple[str, ...]

    def completion_tokens(self, token_count: int) -> int:
        """The `completion_tokens` llama-server reports for an answer that ended by itself: it counts the end token."""
        return token_count + 1

    def prompt_tokens(self, user_text: str) -> int:
        """The `prompt_tokens` of a request with one user message (no system message, no tools): the text
        tokenizes to one token per UTF-8 byte, the template adds the rest."""
        if "  " in user_text or "<|" in user_text:
            raise ValueError("two spaces in a row merge into one token, and `<|...|>` may be a control token")
        control_tokens = 4  # <|im_start|> ... <|im_end|> <|im_start|> ... trigger
        template_text = "user\n" + "\n" + "assistant\n"
        return control_tokens + len(template_text) + len(user_text.encode())

    def long_prefix(self, tokens: int) -> str:
        """The text of the first `tokens` tokens of the long reply (what max_tokens=`tokens` returns)."""
        return "".join(self.long_pieces[:tokens])

    def forever_prefix(self, tokens: int) -> str:
        """The text of the first `tokens` tokens of the endless reply."""
        first, *cycle = self.forever_pieces
        return "".join([first, *(cycle[index % len(cycle)] for index in range(tokens - 1))][:tokens])


ANSWERS = TinyModelAnswers(
    plain_reply="".join(PLAIN_PIECES),
    plain_token_count=len(PLAIN_PIECES),
    tool_name=TOOL_NAME,
    tool_arguments=TOOL_ARGUMENTS,
    tool_call_text="".join(CALL_PIECES),
    tool_call_token_count=len(CALL_PIECES),
    after_tool_reply="".join(AFTER_TOOL_PIECES),
    after_tool_token_count=len(AFTER_TOOL_PIECES),
    long_marker=LONG_MARKER,
    long_reply="".join(LONG_PIECES),
    long_pieces=LONG_PIECES,
    long_token_count=len(LONG_PIECES),
    forever_marker=FOREVER_MARKER,
    forever_pieces=FOREVER_PIECES,
)


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet: each byte as a printable character (GPT-2's mapping)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


_BYTE_CHARS = _bytes_to_unicode()


def _encode(text: str) -> str:
    """A normal token's text as stored in a byte-level BPE vocabulary."""
    return "".join(_BYTE_CHARS[byte] for byte in text.encode("utf-8"))


@dataclass(frozen=True)
class _Vocabulary:
    tokens: list[str]
    types: list[int]
    ids: dict[str, int]  # by decoded text


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as error:
        raise RuntimeError("Writing the tiny model needs the gguf package (`make install` installs it).") from error
    return gguf


def _vocabulary() -> _Vocabulary:
    gguf = _gguf()
    tokens: list[str] = []
    types: list[int] = []
    ids: dict[str, int] = {}

    def add(text: str, stored: str, token_type: int) -> None:
        assert text not in ids, f"duplicate token {text!r}"
        ids[text] = len(tokens)
        tokens.append(stored)
        types.append(token_type)

    normal = int(gguf.TokenType.NORMAL)
    control = int(gguf.TokenType.CONTROL)
    for byte in range(256):
        add(bytes([byte]).decode("latin-1"), _BYTE_CHARS[byte], normal)
    add("  ", _encode("  "), normal)  # the only merge: byte-level BPE needs at least one
    for special in (END_OF_TEXT, IM_START, IM_END, TRIGGER_REPLY, TRIGGER_CALL, TRIGGER_AFTER_TOOL, TRIGGER_LONG):
        add(special, special, control)
    add(TRIGGER_FOREVER, TRIGGER_FOREVER, control)
    for piece in dict.fromkeys((*PLAIN_PIECES, *CALL_PIECES, *AFTER_TOOL_PIECES, *LONG_PIECES, *FOREVER_PIECES)):
        add(piece, _encode(piece), normal)
    return _Vocabulary(tokens, types, ids)


def _successors(vocabulary: _Vocabulary) -> dict[int, int]:
    """Which token follows which: one chain per trigger token."""
    ids = vocabulary.ids
    successors: dict[int, int] = {}
    chains = (
        (TRIGGER_REPLY, PLAIN_PIECES, IM_END),
        (TRIGGER_CALL, CALL_PIECES, IM_END),
        (TRIGGER_AFTER_TOOL, AFTER_TOOL_PIECES, IM_END),
        (TRIGGER_LONG, LONG_PIECES, IM_END),
        (TRIGGER_FOREVER, FOREVER_PIECES, FOREVER_PIECES[1]),
    )
    for trigger, pieces, after in chains:
        sequence = [ids[trigger], *(ids[piece] for piece in pieces), ids[after]]
        for current, following in itertools.pairwise(sequence):
            assert current not in successors, f"token {vocabulary.tokens[current]!r} has two successors"
            successors[current] = following
    return successors


def write_tiny_model(path: Path) -> TinyModelAnswers:
    """Write the tiny model to `path` (byte-identical on every call) and return its exact answers."""
    gguf = _gguf()
    import numpy as np  # a dependency of gguf

    vocabulary = _vocabulary()
    successors = _successors(vocabulary)
    n_vocab = len(vocabulary.tokens)
    # One embedding dimension per token that has a successor, plus one shared by all other tokens (prompt bytes,
    # `<|im_start|>`, ...), which leads to `<|im_end|>`.
    coded = sorted(successors)
    dimension = {token: index + 1 for index, token in enumerate(coded)}
    n_embd = -(-(len(coded) + 1) // 32) * 32

    embeddings = np.zeros((n_vocab, n_embd), dtype=np.float32)
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    end = vocabulary.ids[IM_END]
    output[end, 0] = SUCCESSOR_WEIGHT
    for token in range(n_vocab):
        embeddings[token, dimension.get(token, 0)] = 1.0
    for token, following in successors.items():
        output[following, dimension[token]] = SUCCESSOR_WEIGHT
    _check_chains(embeddings, output, successors)

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-deterministic-test-model")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(1)
    writer.add_head_count_kv(1)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.types)
    writer.add_token_merges([f"{_encode(' ')} {_encode(' ')}"])
    writer.add_bos_token_id(vocabulary.ids[END_OF_TEXT])
    writer.add_eos_token_id(end)
    writer.add_eot_token_id(end)
    writer.add_pad_token_id(vocabulary.ids[END_OF_TEXT])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    zeros = np.zeros
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", zeros((HEAD_DIM, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.attn_k.weight", zeros((HEAD_DIM, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.attn_v.weight", zeros((HEAD_DIM, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.attn_output.weight", zeros((n_embd, HEAD_DIM), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", zeros((FEED_FORWARD, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", zeros((FEED_FORWARD, n_embd), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", zeros((n_embd, FEED_FORWARD), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return ANSWERS


def _check_chains(embeddings: np.ndarray, output: np.ndarray, successors: dict[int, int]) -> None:
    """Replay the network in numpy (RMS norm then output projection) and check every chain step's margin."""
    import numpy as np

    hidden = embeddings / np.sqrt(np.mean(embeddings**2, axis=1, keepdims=True) + 1e-6)
    logits = hidden @ output.T
    for token, following in successors.items():
        row = logits[token]
        runner_up = np.max(np.delete(row, following))
        if int(np.argmax(row)) != following or row[following] - runner_up < 500:
            raise RuntimeError(f"token {token} does not lead to token {following} with a safe margin")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.llama.tiny_model OUT.gguf", file=sys.stderr)
        return 2
    answers = write_tiny_model(Path(argv[0]))
    print(json.dumps({"path": argv[0], "plain_reply": answers.plain_reply, "tool_call": answers.tool_call_text}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
