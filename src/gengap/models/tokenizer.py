"""gengap's character-level tokenizer and chat template for the embedded tiny models.

One token per character keeps the vocabulary tiny (printable ASCII, newline, tab and a few
special tokens), so any prompt style of any task tokenizes without training a tokenizer and
the embedding table stays a few thousand parameters. Chat turns are marked with special tokens
(`<|user|>`, `<|assistant|>`, `<|system|>`, `<|end|>`) instead of spelled-out markers so that a
turn boundary is one token, not ten characters the model must learn to write.

Built with `tokenizers` (WordLevel model + an "isolated" empty-pattern split, i.e. every
character is a word) and wrapped in `PreTrainedTokenizerFast`, so `save_pretrained` /
`AutoTokenizer.from_pretrained` and every tool that reads HF tokenizers handle it.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<|end|>"  # ends every chat turn; generation stops on it
IMAGE_TOKEN = "<image>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN, *ROLE_TOKENS.values())

# Printable ASCII without the form feeds / vertical tabs of `string.printable`: anything else
# (e.g. a suit symbol) becomes <unk> rather than failing.
CHARACTERS = tuple(sorted(set(string.printable) - {"\x0b", "\x0c", "\r"}))

# A generic HF chat template over the role tokens. Content is a string or a list of parts
# ({"type": "text", "text": ...} | {"type": "image"}); the image becomes one <image> token
# that `LlavaProcessor` expands to the vision tower's patch count. The `generation` block lets
# TRL's `assistant_only_loss` find assistant tokens.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{ '<image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('unsupported chat role: ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{ render(message['content']) }}{{ '<|end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ render(message['content']) }}{{ '<|end|>' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


def chat_template(image_markup: str = IMAGE_TOKEN) -> str:
    """gengap's chat template with `image_markup` standing for an image content part."""
    return CHAT_TEMPLATE.replace("{{ '<image>' }}", "{{ '" + image_markup + "' }}")


def build_char_tokenizer(
    model_max_length: int = 2048,
    *,
    extra_special_tokens: tuple[str, ...] = (),
    extra_characters: tuple[str, ...] = (),
    template: str = CHAT_TEMPLATE,
) -> PreTrainedTokenizerFast:
    """A fresh character-level tokenizer with gengap's chat template and special tokens.

    `extra_special_tokens` get ids after the characters (e.g. Qwen2-VL's vision
    markers), so the ids of everything else do not move; `extra_characters` (characters a
    task's data uses beyond printable ASCII) come after those.
    """
    specials = (*SPECIAL_TOKENS, *extra_special_tokens)
    extra = tuple(c for c in dict.fromkeys(extra_characters)
                  if len(c) == 1 and c not in CHARACTERS)
    vocab = {token: i for i, token in
             enumerate((*SPECIAL_TOKENS, *CHARACTERS, *extra_special_tokens, *extra))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    # Every character is its own pre-token, so WordLevel maps characters one to one.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(""), behavior="isolated")
    # Concatenate on decode (the default WordPiece-ish decoders would insert spaces).
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=model_max_length,
        padding_side="left",  # decoder-only generation pads on the left
        chat_template=template,
    )
    return tokenizer


def is_char_tokenizer(path: str | Path) -> bool:
    """Whether `path` holds gengap's character-level tokenizer (an empty-pattern split)."""
    try:
        data = json.loads((Path(path) / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    pre = data.get("pre_tokenizer") or {}
    return pre.get("type") == "Split" and pre.get("pattern") == {"Regex": ""}


def load_tokenizer(path: str | Path) -> Any:
    """The checkpoint's tokenizer, exactly as it was saved.

    For a qwen2 config, transformers' `AutoTokenizer` rebuilds the tokenizer as a
    `Qwen2Tokenizer` (Qwen's byte-level pre-tokenizer over our vocabulary), which silently
    drops the spaces of gengap's character tokenizer: a model trained with spaces then sees
    prompts without them. gengap's own tokenizer therefore loads through the generic backend,
    which reads tokenizer.json as written; every other checkpoint goes through `AutoTokenizer`.
    """
    if is_char_tokenizer(path):
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
