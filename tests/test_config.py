"""Recipe loading: precedence, typed overrides, and clear errors for bad keys and values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

from gengap.cli import app
from gengap.config import load_recipe, parse_overrides, save_recipe
from gengap.errors import InputError
from gengap.train import GRPORecipe, SFTRecipe


@dataclass(kw_only=True)
class Recipe:
    model: str
    steps: int = 10
    lr: float = 1e-5
    lora: bool = False
    max_length: int | None = 512
    reward: Literal["shaped", "binary"] = "shaped"
    report_to: list[str] = field(default_factory=list)
    task_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.steps < 1:
            raise InputError("'steps' must be >= 1")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_yaml_explicit_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "model: a\nsteps: 20\nlr: 1e-4\nlora: true\n")
    recipe = load_recipe(Recipe, path, ["steps=40"], model="b", steps=30, lr=None)
    assert recipe.model == "b"  # explicit beats YAML
    assert recipe.steps == 40  # override beats explicit
    assert recipe.lr == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string: still a float
    assert recipe.lora is True and recipe.max_length == 512  # YAML, default


def test_override_types(tmp_path: Path) -> None:
    recipe = load_recipe(Recipe, None, [
        "model=m", "lr=3e-5", "lora=yes", "max_length=null", "reward=binary",
        "report_to=tensorboard,wandb", "task_options.prompt_style=compact",
        "task_options.target=24",
    ])
    assert recipe.lr == pytest.approx(3e-5) and recipe.lora is True
    assert recipe.max_length is None and recipe.reward == "binary"
    assert recipe.report_to == ["tensorboard", "wandb"]
    assert recipe.task_options == {"prompt_style": "compact", "target": 24}
    assert load_recipe(Recipe, None, ["model=m", "report_to=[a, b]"]).report_to == ["a", "b"]


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "model: a\nlearning_rat: 1e-5\n")
    with pytest.raises(InputError) as err:
        load_recipe(Recipe, path)
    text = str(err.value)
    assert "learning_rat" in text and str(path) in text
    assert "valid keys: model, steps, lr, lora" in text
    with pytest.raises(InputError, match="unknown key 'stepz'"):
        load_recipe(Recipe, None, ["model=a", "stepz=3"])


@pytest.mark.parametrize(("override", "expected"), [
    ("steps=ten", "'steps' must be an integer"),
    ("steps=1.5", "'steps' must be an integer"),
    ("lr=fast", "'lr' must be a number"),
    ("lora=maybe", "'lora' must be true or false"),
    ("reward=dense", "'reward' must be one of shaped, binary"),
    ("steps=0", "'steps' must be >= 1"),  # the recipe's own validate()
    ("steps", "not of the form key=value"),
    ("lora.r=3", "'lora' is not a mapping"),
])
def test_bad_values_are_input_errors(override: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_recipe(Recipe, None, ["model=a", override])


def test_bad_types_in_yaml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'steps' must be an integer, got 'many'"):
        load_recipe(Recipe, write(tmp_path, "model: a\nsteps: many\n"))
    with pytest.raises(InputError, match="'lora' must be true or false"):
        load_recipe(Recipe, write(tmp_path, "model: a\nlora: 1\n"))
    with pytest.raises(InputError, match="mapping"):
        load_recipe(Recipe, write(tmp_path, "- a\n- b\n"))
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(Recipe, write(tmp_path, "model: [a\n"))
    with pytest.raises(InputError, match="no such recipe file"):
        load_recipe(Recipe, tmp_path / "missing.yaml")


def test_missing_required_key() -> None:
    with pytest.raises(InputError, match=r"missing required key.*model") as err:
        load_recipe(Recipe, None, ["steps=3"])
    assert "--model" in str(err.value)


def test_saved_recipe_loads_back_identically(tmp_path: Path) -> None:
    recipe = load_recipe(Recipe, None, ["model=m", "lr=2e-5", "max_length=null",
                                        "task_options.prompt_style=compact"])
    save_recipe(recipe, tmp_path / "saved.yaml")
    assert load_recipe(Recipe, tmp_path / "saved.yaml") == recipe
    assert parse_overrides(["--max-length=3"]) == {"max_length": "3"}


def test_shipped_recipes_load(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("")
    root = Path(__file__).resolve().parents[1] / "configs" / "train"
    for path in sorted(root.glob("*.yaml")):
        if "grpo" in path.name:
            recipe = load_recipe(GRPORecipe, path, [], model="tiny", out=str(tmp_path))
            assert recipe.num_generations == 8 and recipe.beta == pytest.approx(0.04)
        elif "ppo" in path.name:
            from gengap.train.ppo_config import PPORecipe

            ppo = load_recipe(PPORecipe, path, [], model="tiny", out=str(tmp_path))
            assert ppo.gamma == pytest.approx(0.9) and ppo.lam == pytest.approx(0.95)
        else:
            load_recipe(SFTRecipe, path, [], model="tiny", out=str(tmp_path), data=str(data))


def test_shipped_recipes_by_name_and_inside_the_package(tmp_path: Path, monkeypatch) -> None:
    """`--config sft-tiny` finds the shipped recipe from any directory (an installed gengap has
    no checkout): the recipes and presets live inside the package."""
    import gengap
    from gengap.study import load_preset

    package = Path(gengap.__file__).parent / "configs"
    assert (package / "train" / "sft-tiny.yaml").is_file()
    assert (package / "presets" / "tiny-gp-text.yaml").is_file()
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(GRPORecipe, "grpo-tiny", [], model="tiny", out="x")
    assert recipe == load_recipe(GRPORecipe, package / "train" / "grpo-tiny.yaml", [],
                                 model="tiny", out="x")
    with pytest.raises(InputError, match=r"shipped recipe: .*sft-tiny"):
        load_recipe(GRPORecipe, "grpo-huge", [], model="tiny", out="x")
    # A user's own preset file works like a shipped one.
    own = tmp_path / "mine.yaml"
    own.write_text((package / "presets" / "tiny-gp-text.yaml").read_text() + "steps: 7\n")
    assert load_preset(str(own)).steps == 7


def test_train_recipe_batch_must_divide() -> None:
    with pytest.raises(InputError, match="not divisible"):
        load_recipe(GRPORecipe, None, ["batch_size=3", "gradient_accumulation_steps=5"],
                    model="tiny", out="x")
    with pytest.raises(InputError, match="num_generations"):
        load_recipe(GRPORecipe, None, ["num_generations=1"], model="tiny", out="x")


def test_cli_reports_recipe_errors_with_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "grpo", "--model", "tiny", "--out",
                                      str(tmp_path / "run"), "learnin_rate=1e-5"])
    assert result.exit_code == 2
    assert "unknown key 'learnin_rate'" in result.output and "learning_rate" in result.output
    result = CliRunner().invoke(app, ["train", "sft", "--model", "tiny", "--out",
                                      str(tmp_path / "run"), "--data", str(tmp_path / "no.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
    assert not (tmp_path / "run").exists()
