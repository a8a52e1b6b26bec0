"""The cold start: recipe resolution, cache keys, training rows, determinism and cache hits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gengap.coldstart import (
    METADATA_FILE,
    RECIPE_FILE,
    coldstart,
    load_metadata,
    resolve_recipe,
    warmup_dataset,
)
from gengap.errors import InputError

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 2}
SMALL_VISION = {"vision_hidden_size": 32, "vision_intermediate_size": 64,
                "vision_num_hidden_layers": 1, "vision_num_attention_heads": 2}
# A reduced recipe: a few optimizer steps, a handful of eval prompts.
REDUCED = {
    "model": SMALL,
    "phases": [
        {"name": "pretrain", "steps": 3, "batch_size": 8, "learning_rate": 1e-3,
         "targets": "any"},
        {"name": "sft", "steps": 2, "batch_size": 8, "learning_rate": 1e-4},
    ],
    "eval_n": 4,
    "eval_k": 2,
}


def gp(modality: str = "text") -> Any:
    """GeneralPoints as the tiny model sees it (compact prompts)."""
    from gengap.tasks.registry import build_task

    return build_task("generalpoints", {"modality": modality}, tiny=True)


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GENGAP_CACHE", str(tmp_path / "cache"))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


# -- recipes -------------------------------------------------------------------------------


def test_recipe_overrides_merge_and_change_the_key() -> None:
    base = resolve_recipe(gp())
    same = resolve_recipe(gp())
    assert base.key() == same.key()
    wider = resolve_recipe(gp(), model={"hidden_size": 96})
    assert wider.model["hidden_size"] == 96 and wider.key() != base.key()
    assert resolve_recipe(gp(), seed=1).key() != base.key()
    half = resolve_recipe(gp(), steps_scale=0.5)
    assert [p.steps for p in half.phases] == [max(1, round(p.steps / 2)) for p in base.phases]
    assert base.task_options["prompt_style"] == "compact"
    assert base.task_options["modality"] == "text"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 1e-3}, "unknown cold-start setting"),
        ({"phases": [{"name": "x", "steps": 1}]}, "bad cold-start phase"),
        ({"phases": [{"name": "x", "steps": 1, "batch_size": 2, "learning_rate": 1e-3,
                      "targets": "best"}]}, "targets must be"),
        ({"task_options": {"modality": "image"}}, "unknown cold-start setting"),
    ],
)
def test_bad_recipes_are_input_errors(overrides: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_recipe(gp(), **overrides)


def test_unknown_task_or_target_variant_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown task"):
        coldstart("nope", tmp_path / "out", **REDUCED)
    with pytest.raises(InputError, match="targets must be one of"):
        resolve_recipe(gp(), phases=[{"name": "x", "steps": 1, "batch_size": 2,
                                      "learning_rate": 1e-3, "targets": "cards+"}])


# -- training rows ---------------------------------------------------------------------------


def test_text_rows_match_the_chat_template_and_mask_the_prompt() -> None:
    from gengap.models.tiny import build_tokenizer_and_processor
    from gengap.tasks.registry import get_task

    task = get_task("generalpoints", modality="text", prompt_style="compact")
    tokenizer = build_tokenizer_and_processor("text")
    rows = warmup_dataset(task, tokenizer, range(6), seed=0, targets="answer")
    for index, row in enumerate(rows):
        sample = task.sample("warmup", index, 0)
        conversation = [*task.messages(sample),
                        {"role": "assistant", "content": task.target(sample)}]
        # Exactly what TRL would tokenize from the conversational row.
        expected = tokenizer.apply_chat_template(conversation, tokenize=False)
        assert tokenizer.decode(row["input_ids"]) == expected
        trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True)
                   if label != -100]
        assert tokenizer.decode(trained) == task.target(sample) + tokenizer.eos_token


def test_any_targets_are_valid_solutions_and_vary() -> None:
    from gengap.models.tiny import build_tokenizer_and_processor
    from gengap.tasks.registry import get_task

    task = get_task("generalpoints", modality="text", prompt_style="compact")
    tokenizer = build_tokenizer_and_processor("text")
    rows = warmup_dataset(task, tokenizer, range(40), seed=0, targets="any")
    answers = []
    for index, row in enumerate(rows):
        sample = task.sample("warmup", index, 0)
        completion = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"],
                                                             strict=True) if label != -100],
                                      skip_special_tokens=True)
        assert task.verify(sample, completion).correct
        answers.append(completion == task.target(sample))
    assert not all(answers)  # not just the canonical answer
    rules = {task.sample("warmup", i, 0).fields["face_rule"] for i in range(40)}
    assert rules == {"as10", "as11-13"}  # the warmup split mixes both face rules


def test_cards_targets_are_the_recognition_prefix() -> None:
    from gengap.models.tiny import build_tokenizer_and_processor
    from gengap.tasks.registry import get_task

    task = get_task("generalpoints", modality="image", prompt_style="compact")
    processor = build_tokenizer_and_processor("image")
    rows = warmup_dataset(task, processor, range(5), seed=0, targets="cards")
    for index, row in enumerate(rows):
        sample = task.sample("warmup", index, 0)
        completion = row["completion"][0]["content"]
        assert completion == ",".join(sample.fields["cards"]) + "|"
        assert task.target(sample).startswith(completion)


def test_vision_learning_rate_keeps_old_keys_and_splits_the_optimizer() -> None:
    from gengap.coldstart import Phase, _optimizer
    from gengap.models.tiny import build_tiny

    plain = {"name": "p", "steps": 1, "batch_size": 2, "learning_rate": 1e-3}
    old = resolve_recipe(gp(), phases=[plain])
    unset = resolve_recipe(gp(),
                           phases=[{**plain, "vision_learning_rate": None}])
    split = resolve_recipe(gp(),
                           phases=[{**plain, "vision_learning_rate": 1e-4}])
    assert old.key() == unset.key() != split.key()  # cached text cold starts stay valid

    model, _ = build_tiny("image", seed=0, **SMALL, **SMALL_VISION)
    optimizer = _optimizer(model, Phase(**plain, vision_learning_rate=1e-4))
    decoder, vision = optimizer.param_groups
    assert (decoder["lr"], vision["lr"]) == (1e-3, 1e-4)
    vision_ids = {id(p) for n, p in model.named_parameters()
                  if "vision_tower" in n or "multi_modal_projector" in n}
    assert {id(p) for p in vision["params"]} == vision_ids
    assert len(decoder["params"]) + len(vision["params"]) == len(list(model.parameters()))
    assert _optimizer(model, Phase(**plain)) is None  # TRL builds its usual optimizer


def test_a_phase_may_draw_from_another_warmup_split_only() -> None:
    plain = {"name": "p", "steps": 1, "batch_size": 2, "learning_rate": 1e-3}
    assert (resolve_recipe(gp(), phases=[plain]).key()
            == resolve_recipe(gp(), phases=[{**plain, "split": None}]).key())
    assert (resolve_recipe(gp(), phases=[{**plain, "split": "warmup"}]).phases[0].split
            == "warmup")
    with pytest.raises(InputError, match="not a warmup split"):
        resolve_recipe(gp(), phases=[{**plain, "split": "test-id"}])


def test_a_zero_vision_rate_freezes_the_vision_side_for_the_phase(tmp_path: Path) -> None:
    from gengap.coldstart import Phase, _train_phase
    from gengap.models.tiny import build_tiny

    task = gp("image")
    model, processor = build_tiny("image", seed=0, **SMALL, **SMALL_VISION)
    rows = warmup_dataset(task, processor, range(4), seed=0, targets="cards")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train_phase(model, processor, rows, Phase("frozen", 2, 2, 1e-2, vision_learning_rate=0.0),
                 0, tmp_path)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    vision = {n for n in before if "vision_tower" in n or "multi_modal_projector" in n}
    assert changed and not changed & vision  # the decoder trained, the vision side did not
    assert all(p.requires_grad for p in model.parameters())  # and trains again afterwards


def test_a_revision_key_resolves_the_phase_defaults() -> None:
    """Two ways to write one revision phase share a key; a changed setting (or default) is a
    new checkpoint."""
    plain = resolve_recipe(gp(), revision={"steps": 300})
    spelled = resolve_recipe(gp(), revision={"steps": 300, "micro_batches": 8})
    other = resolve_recipe(gp(), revision={"steps": 300, "micro_batches": 4})
    assert plain.key() == spelled.key() != other.key() != resolve_recipe(gp()).key()


def test_micro_batches_train_the_same_rows_with_the_same_loss(tmp_path: Path) -> None:
    """A step split into length-balanced micro-batches (gradients accumulated) takes the
    same step as the whole batch at once: one step over exactly one batch of rows of very
    different lengths gives the same loss and the same weights."""
    from gengap.coldstart import Phase, _train_phase, rows_dataset
    from gengap.models.tiny import build_tiny

    prompts = [[{"role": "user", "content": "24 as11-13 K,A,5,3" + " pad" * (40 * (i % 4))}]
               for i in range(8)]
    completions = [f"{i}+13+3+5" * (1 + i % 3) for i in range(8)]
    phase = Phase("p", 1, 8, 1e-3, warmup_fraction=0.0, lr_scheduler_type="constant")
    weights, losses = [], []
    for micro in (1, 4):
        model, processor = build_tiny("text", seed=0, **SMALL)
        rows = rows_dataset(processor, prompts, completions, [[] for _ in prompts])
        losses.append(_train_phase(model, processor, rows, phase, 0, tmp_path / str(micro),
                                   micro_batches=micro))
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    for name, value in weights[0].items():
        assert torch.allclose(value, weights[1][name], atol=1e-5), name
    fresh = dict(build_tiny("text", seed=0, **SMALL)[0].named_parameters())
    assert any(not torch.equal(v, fresh[n]) for n, v in weights[0].items())  # it did train
    with pytest.raises(InputError, match="not a multiple"):
        _train_phase(model, processor, rows, Phase("p", 1, 6, 1e-3), 0, tmp_path / "bad",
                     micro_batches=4)


# -- end to end (reduced recipes) ------------------------------------------------------------


@pytest.mark.slow
def test_coldstart_is_deterministic_per_seed_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = coldstart(gp(), **REDUCED)
    assert (first / RECIPE_FILE).is_file() and (first / METADATA_FILE).is_file()
    meta = load_metadata(first)
    assert set(meta["quality"]) == {"test-id", "test-ood-rule"}
    assert meta["coldstart_key"] in first.name

    again = coldstart(gp(), tmp_path / "again", **REDUCED)
    other = coldstart(gp(), tmp_path / "other", seed=1, **REDUCED)
    a, b, c = _weights(first), _weights(again), _weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)

    # A second call finds the finished checkpoint without training.
    import gengap.coldstart as module

    def no_training(*_: object, **__: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(module, "_run", no_training)
    start = time.perf_counter()
    assert coldstart(gp(), **REDUCED) == first
    assert time.perf_counter() - start < 1.0

    from gengap.models import load_model

    loaded = load_model(str(first))
    assert not loaded.is_vlm and loaded.model.config.hidden_size == SMALL["hidden_size"]


@pytest.mark.slow
def test_image_coldstart_starts_from_the_text_decoder() -> None:
    image = coldstart(
        gp("image"),
        model={**SMALL, **SMALL_VISION},
        phases=[{"name": "recognise", "steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                 "targets": "cards", "vision_learning_rate": 3e-4},
                {"name": "pretrain", "steps": 2, "batch_size": 4, "learning_rate": 1e-3,
                 "targets": "any"}],
        text_recipe={k: v for k, v in REDUCED.items() if k != "eval_n"} | {"eval_n": 0},
        eval_n=2, eval_k=2,
    )
    meta = load_metadata(image)
    text = Path(meta["text_init"])
    assert (text / METADATA_FILE).is_file()
    assert set(meta["quality"]) == {"test-id", "test-ood-rule", "test-ood-visual"}
    assert 0 <= meta["quality"]["test-id"]["recognition"] <= 1
    from gengap.models import load_model

    loaded = load_model(str(image), modality="image")
    assert meta["coldstart_key"] in image.name
    assert loaded.is_vlm and type(loaded.processor).__name__ == "LlavaProcessor"
