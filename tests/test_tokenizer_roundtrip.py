"""A saved tiny text model must tokenize exactly as it did in training once loaded again.

transformers' AutoTokenizer rebuilds any qwen2 checkpoint's tokenizer as a Qwen2Tokenizer,
which silently dropped every space of gengap's character tokenizer: the cold-started model
then saw prompts it was never trained on (greedy ID success fell from ~69% to ~28%).
"""

from __future__ import annotations

from pathlib import Path

from gengap.models import load_model
from gengap.models.tiny import build_tiny
from gengap.tasks import get_task


def test_saved_text_model_tokenizes_like_the_original(tmp_path: Path) -> None:
    model, tokenizer = build_tiny("text", hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=2)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    task = get_task("generalpoints", prompt_style="paper")  # long prompts, spaces, newlines
    for i in range(5):
        text = tokenizer.apply_chat_template(task.messages(task.sample("test-id", i, 0)),
                                             add_generation_prompt=True, tokenize=False)
        assert loaded.processor.apply_chat_template(
            task.messages(task.sample("test-id", i, 0)), add_generation_prompt=True,
            tokenize=False) == text
        assert (loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
                == tokenizer(text, add_special_tokens=False)["input_ids"])
    assert loaded.tokenizer.decode(loaded.tokenizer(" a\nb ")["input_ids"],
                                   skip_special_tokens=True) == " a\nb "
