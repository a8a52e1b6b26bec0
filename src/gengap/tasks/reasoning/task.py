"""reasoning-gym as a gengap task: any of its datasets by name, an ID and an OOD generator.

Splits (every split finite, sizes are options; a sample is a pure function of split, seed and
index, since reasoning-gym item ``i`` is drawn from ``Random(seed + i)`` and every split has
its own hashed seed):

| split              | role       | generator                                               |
|--------------------|------------|---------------------------------------------------------|
| warmup             | warmup     | ID, with a share (`warmup_ood_share`) from the OOD one   |
| train              | train      | ID (`config`)                                           |
| validation         | validation | ID                                                      |
| test-id            | test       | ID                                                      |
| test-ood-<axis>    | ood        | OOD: `config` with `ood_config` over it                  |

The OOD axis is named after what changed (``min_terms``/``max_terms`` -> ``terms``) unless
`ood_axis` names it. The warmup split is the tiny model's cold start: like GeneralPoints' it
mixes in the OOD variant so that the shift sits inside the model's prior, as it does for a
pretrained model.

Judging: correct means reasoning-gym's score is exactly 1.0 (its scorers give partial credit to
wrong answers: gold "30", answer "-30" scores 0.67); the shaped reward is the score, and the
score is the verdict metric ``score``. 24-game items (`games.GAME24_TARGETS`) are judged by the
GeneralPoints verifier instead (why in `gengap.tasks.reasoning.games`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from gengap.errors import InputError
from gengap.tasks.base import Message, Sample, Split, TaskBase, Verdict, user_turn
from gengap.tasks.reasoning import backend, games, prompts

# gengap's ID / OOD settings for datasets it knows (a user's `config` / `ood_config` go over
# them), and the metadata keys eval breaks results down by.
DEFAULTS: dict[str, dict[str, Any]] = {
    "chain_sum": {"config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1},
                  "ood_config": {"min_terms": 4, "max_terms": 5}, "report_by": ("num_terms",)},
    "basic_arithmetic": {"config": {"min_terms": 2, "max_terms": 3, "min_digits": 1,
                                    "max_digits": 1, "allow_parentheses": False},
                         "ood_config": {"min_terms": 4, "max_terms": 5},
                         "report_by": ("num_terms",)},
}
SIZES = ("warmup_size", "train_size", "validation_size", "test_size", "ood_size")
MAX_SIZE = 10_000_000
_CACHE_ITEMS = 100_000

# The tiny model's cold start (chain_sum, compact prompts): a pretraining stand-in at a high
# rate, then a short low-rate pass, as GeneralPoints'. Measured (seed 0, n=200, k=8, T=0.9,
# 2026-12-02, 2 shared cores at load ~9: 571 s training): test-id greedy 77.0%, T=0.9 48.2%,
# all 8 wrong 5.5%, all 8 right 4.5% (so all three DC-SFT buckets fill); test-ood-terms
# greedy 22.0%, T=0.9 18.4%, all wrong 33.5%. A 1-2 digit ID config left the easy bucket
# empty (all right 0%, greedy 24.5%), hence one-digit terms.
COLDSTART = {"text": {
    "phases": [
        {"name": "pretrain", "steps": 400, "batch_size": 64, "learning_rate": 2e-3},
        {"name": "sft", "steps": 100, "batch_size": 64, "learning_rate": 3e-4},
    ],
    "eval_n": 200, "eval_k": 8,
}}


@dataclass
class ReasoningGymConfig:
    """Options of the reasoning-gym task (`-O key=value`; `-O config.max_terms=4` sets one)."""

    dataset: str = field(default="chain_sum", metadata={
        "help": "any reasoning-gym dataset name (chain_sum, basic_arithmetic, puzzle24, ...)"})
    config: dict[str, Any] | None = field(default=None, metadata={
        "help": "the dataset's options for ID splits, over gengap's defaults for it"})
    ood_config: dict[str, Any] | None = field(default=None, metadata={
        "help": "options that change for the OOD split (over config); {} = no OOD split"})
    ood_axis: str | None = field(default=None, metadata={
        "help": "name of the OOD axis (default: the changed options, e.g. terms)"})
    prompt_style: Literal["paper", "compact"] = field(default="paper", metadata={
        "help": "paper (system prompt + question, <answer> tags) or compact (tiny models)"})
    system_prompt: str = field(default="default", metadata={
        "help": "reasoning-gym system prompt for paper style (default, DeepSeekZero, ...)"})
    warmup_size: int = field(default=20_000, metadata={"help": "warmup split size"})
    train_size: int = field(default=2_000, metadata={"help": "train split size"})
    validation_size: int = field(default=500, metadata={"help": "validation split size"})
    test_size: int = field(default=1_000, metadata={"help": "ID test split size"})
    ood_size: int = field(default=1_000, metadata={"help": "OOD test split size"})
    warmup_ood_share: float = field(default=0.25, metadata={
        "help": "share of warmup items drawn from the OOD generator (0..1)"})
    seed: int | None = field(default=None, metadata={
        "help": "fixed data seed (None: the run's seed decides the items)"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "completion budget (default: 512 paper; compact: from the answers' length)"})

    def validate(self) -> None:
        backend.check_name(self.dataset)
        for name in SIZES:
            value = getattr(self, name)
            if not 1 <= value <= MAX_SIZE:
                raise InputError(f"{name} must be between 1 and {MAX_SIZE}, got {value}",
                                 where=f"task option {name}")
        if not 0.0 <= self.warmup_ood_share <= 1.0:
            raise InputError(f"warmup_ood_share must lie in [0, 1], got {self.warmup_ood_share}",
                             where="task option warmup_ood_share")
        from reasoning_gym.utils import SYSTEM_PROMPTS

        if self.system_prompt not in SYSTEM_PROMPTS:
            raise InputError(f"unknown system_prompt {self.system_prompt!r}",
                             where="task option system_prompt",
                             hint=f"one of {', '.join(SYSTEM_PROMPTS)}")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 32_768:
            raise InputError(f"max_new_tokens must be in 1..32768, got {self.max_new_tokens}",
                             where="task option max_new_tokens")
        id_options, ood_options = self.resolved()
        backend.check_options(self.dataset, id_options, "config")
        if ood_options is not None:
            backend.check_options(self.dataset, ood_options, "ood_config")
            check_shift(id_options, ood_options, self.dataset)
        if self.ood_axis is not None and not self.ood_axis.replace("-", "").isalnum():
            raise InputError(f"ood_axis must be letters, digits and '-', got {self.ood_axis!r}",
                             where="task option ood_axis")

    def resolved(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(ID options, OOD options or None): gengap's defaults, then the user's over them."""
        known = DEFAULTS.get(self.dataset, {})
        id_options = {**known.get("config", {}), **(self.config or {})}
        shift = known.get("ood_config", {}) if self.ood_config is None else self.ood_config
        if not shift:
            return id_options, None
        return id_options, {**id_options, **shift}


def changed(id_options: Mapping[str, Any], ood_options: Mapping[str, Any],
            dataset: str) -> list[str]:
    """The options whose resolved value differs between the ID and OOD generators."""
    defaults = backend.config_defaults(dataset)
    return [k for k in sorted(set(id_options) | set(ood_options))
            if ood_options.get(k, defaults.get(k)) != id_options.get(k, defaults.get(k))]


def check_shift(id_options: Mapping[str, Any], ood_options: Mapping[str, Any],
                dataset: str) -> None:
    """An `InputError` unless the OOD generator really differs from the ID one.

    A ``min_X`` / ``max_X`` pair whose OOD range lies inside the ID range is no shift: OOD
    items would be ID items.
    """
    keys = changed(id_options, ood_options, dataset)
    if not keys:
        raise InputError("ood_config changes nothing: the OOD split would be the ID split",
                         where="task option ood_config",
                         hint="change an option, e.g. ood_config.max_terms=5, or pass "
                              "ood_config={} for no OOD split")
    defaults = backend.config_defaults(dataset)

    def get(opts: Mapping[str, Any], key: str) -> Any:
        return opts.get(key, defaults.get(key))

    ranges = {k[4:] for k in keys if k[:4] in ("min_", "max_")}
    inside = []
    for name in ranges:
        lo, hi = f"min_{name}", f"max_{name}"
        values = [get(o, k) for o in (id_options, ood_options) for k in (lo, hi)]
        if all(isinstance(v, int | float) for v in values):
            id_lo, id_hi, ood_lo, ood_hi = values
            inside.append(id_lo <= ood_lo and ood_hi <= id_hi)
    other = [k for k in keys if k[:4] not in ("min_", "max_")]
    if inside and all(inside) and not other:
        raise InputError(f"the OOD ranges of {', '.join(sorted(ranges))} lie inside the ID "
                         "ranges: OOD items would be ID items", where="task option ood_config",
                         hint="move the OOD range past the ID one (e.g. more terms or digits)")


def axis_name(keys: list[str]) -> str:
    """The OOD axis from the changed options: min_terms, max_terms -> terms."""
    names = []
    for key in keys:
        name = key[4:] if key[:4] in ("min_", "max_") else key
        name = name.replace("_", "-")
        if name not in names:
            names.append(name)
    return "-".join(names) or "shift"


class ReasoningGymTask(TaskBase):
    """Any reasoning-gym dataset: its questions, its scorer (score 1.0 = correct)."""

    name = "reasoning-gym"
    description = ("reasoning-gym's procedural datasets (chain_sum, puzzle24, ...); "
                   "OOD = the same generator with shifted options. Needs gengap[reasoning].")
    Config = ReasoningGymConfig
    tiny_options: ClassVar[dict[str, Any]] = {"prompt_style": "compact"}
    metric_docs: ClassVar[dict[str, str]] = {
        "score": "reasoning-gym's score of the answer (1.0 = correct; wrong answers may score "
                 "above 0); 24-game items: the exact verifier's 1 or 0"}
    coldstart_recipe: ClassVar[dict[str, dict[str, Any]]] = COLDSTART

    def __init__(self, config: ReasoningGymConfig | None = None, **options: Any):
        backend.rg()  # a clear InputError before anything else if the extra is missing
        super().__init__(config, **options)
        c = self.config
        self.id_options, self.ood_options = c.resolved()
        self.report_by = tuple(DEFAULTS.get(c.dataset, {}).get("report_by", ()))
        self.ood_split: str | None = None
        if self.ood_options is not None:
            axis = c.ood_axis or axis_name(changed(self.id_options, self.ood_options, c.dataset))
            self.ood_split = f"test-ood-{axis}"
            self.axis = axis
        self._generators: dict[tuple[str, str, int], Any] = {}
        self._items: dict[tuple[str, int, int], tuple[str, dict[str, Any], str, str]] = {}
        self._template: tuple[str, str] | None = None
        self._budget: int | None = None

    # -- configuration ---------------------------------------------------------------------
    @property
    def max_new_tokens(self) -> int:
        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        if self.config.prompt_style == "paper":
            return 512
        if self._budget is None:  # compact: twice the longest of the first answers, + slack
            answers = [self.sample(s.name, i, 0).answer for s in self.with_role("test", "ood")
                       for i in range(min(16, s.size or 16))]
            self._budget = max(8, 2 * max(len(a) for a in answers) + 4)
        return self._budget

    def data_fingerprint(self) -> str | None:
        """reasoning-gym's version: its generators decide the items."""
        return f"reasoning-gym {backend.version()}"

    @property
    def splits(self) -> dict[str, Split]:
        c = self.config
        out = [
            Split("warmup", "warmup", c.warmup_size,
                  description="ID" + (f", {c.warmup_ood_share:.0%} OOD" if self.ood_split
                                      else "")),
            Split("train", "train", c.train_size, description=f"{c.dataset} {self.id_options}"),
            Split("validation", "validation", c.validation_size, description="ID"),
            Split("test-id", "test", c.test_size, description="ID"),
        ]
        if self.ood_split:
            out.append(Split(self.ood_split, "ood", c.ood_size, axis=self.axis,
                             description=f"{c.dataset} {self.ood_options}"))
        return {s.name: s for s in out}

    # -- samples ---------------------------------------------------------------------------
    def _generator(self, which: str, split: str, seed: int) -> Any:
        key = (which, split, seed)
        if key not in self._generators:
            options = self.id_options if which == "id" else self.ood_options
            self._generators[key] = backend.make(
                self.config.dataset, options, seed=backend.split_seed(seed, split, which),
                size=self.split(split).size, where="config" if which == "id" else "ood_config")
        return self._generators[key]

    def _which(self, split: str, index: int, seed: int) -> str:
        if split == self.ood_split:
            return "ood"
        if split == "warmup" and self.ood_split:
            share = self.config.warmup_ood_share
            return "ood" if random.Random(f"{seed}/warmup-mix/{index}").random() < share else "id"
        return "id"

    def sample(self, split: str, index: int, seed: int) -> Sample:
        """Item `index` of `split` (cached: some generators, e.g. puzzle24, are slow)."""
        self.check_index(split, index)
        seed = self.config.seed if self.config.seed is not None else seed
        key = (split, index, seed)
        if key not in self._items:
            if len(self._items) >= _CACHE_ITEMS:
                self._items.clear()
            which = self._which(split, index, seed)
            item = self._generator(which, split, seed)[index]
            metadata = backend.json_safe(item.get("metadata", {}))
            answer = "" if item.get("answer") is None else str(item["answer"])
            # reasoning-gym writes a 24-game answer in sympy's form (it may start with a
            # unary minus): train on a formula the exact verifier accepts.
            if (games.is_game24(self.config.dataset)
                    and not games.judge_game24(self.config.dataset, answer, metadata).correct):
                answer = games.canonical(self.config.dataset, metadata) or answer
            self._items[key] = (str(item["question"]), metadata, answer, which)
        question, metadata, answer, which = self._items[key]
        fields = {"dataset": self.config.dataset, "generator": which, "question": question,
                  "metadata": metadata}
        return Sample(f"{self.config.dataset}/{split}/{index}", self.name, split, index,
                      fields, answer)

    # -- prompts ---------------------------------------------------------------------------
    def template(self) -> tuple[str, str]:
        """(prefix, suffix) every question of the dataset shares (fixed seed: the prompt
        format does not depend on the run's seed)."""
        if self._template is None:
            questions = [self.sample(s.name, i, 0).fields["question"]
                         for s in self.with_role("test", "ood") for i in range(min(16, s.size))]
            self._template = prompts.template(questions)
        return self._template

    def messages(self, sample: Sample) -> list[Message]:
        question = sample.fields["question"]
        if self.config.prompt_style == "compact":
            return [user_turn(prompts.compact_question(question, *self.template()))]
        from reasoning_gym.utils import SYSTEM_PROMPTS

        return [{"role": "system", "content": SYSTEM_PROMPTS[self.config.system_prompt]},
                user_turn(question)]

    def target(self, sample: Sample, variant: str = "answer",
               rng: random.Random | None = None) -> str:
        """The gold answer, in <answer> tags for paper prompts, bare for compact ones."""
        if variant != "answer":
            raise InputError(f"unknown target variant {variant!r}", hint="one of answer")
        if self.config.prompt_style == "paper":
            return prompts.paper_target(sample.answer)
        return sample.answer

    # -- judging ---------------------------------------------------------------------------
    def _scorer(self, which: str) -> Any:
        return self._generator(which if self.ood_split else "id", "test-id" if which == "id"
                               else self.ood_split, 0)

    def verify(self, sample: Sample, completion: str) -> Verdict:
        """Score the answer with reasoning-gym's scorer; correct iff the score is 1.0."""
        f = sample.fields
        answer = prompts.read_answer(completion, self.config.prompt_style)
        if games.is_game24(f["dataset"]):
            return games.judge_game24(f["dataset"], answer, f["metadata"])
        if answer is None:
            return Verdict(0.0, False, "no <answer>...</answer> found.", {"score": 0.0},
                           {"answer": None})
        entry = {"question": f["question"], "answer": sample.answer, "metadata": f["metadata"]}
        try:
            score = float(self._scorer(f.get("generator", "id")).score_answer(answer, entry))
        except Exception:  # a scorer that chokes on odd text: the answer is wrong
            score = 0.0
        if not math.isfinite(score):
            score = 0.0
        correct = score == 1.0
        feedback = ("Correct answer." if correct else
                    f"the answer {answer[:60]!r} is wrong (reasoning-gym score {score:.2f}).")
        return Verdict(score, correct, feedback, {"score": score},
                       {"answer": answer[:200], "rg_score": score})

    def categories(self, sample: Sample) -> dict[str, Any]:
        """Scalar metadata of the item (chain_sum: num_terms, num_digits) and its generator."""
        out: dict[str, Any] = {"generator": sample.fields.get("generator", "id")}
        for key, value in sample.fields.get("metadata", {}).items():
            if key in ("source_index", "source_dataset"):
                continue
            if isinstance(value, bool | int) or (isinstance(value, str) and len(value) <= 24):
                out[key] = value
        return out

    # -- rows ------------------------------------------------------------------------------
    def sample_from_row(self, row: Mapping[str, Any], *, where: str | None = None) -> Sample:
        """Rebuild a sample from `row(sample)`: needs question, metadata and answer."""
        missing = [k for k in ("question", "metadata", "answer") if k not in row]
        if missing:
            raise InputError(f"missing field(s) {', '.join(missing)}", where=where,
                             hint="rows come from `gengap data --task reasoning-gym`")
        if not isinstance(row["metadata"], Mapping):
            raise InputError("'metadata' must be a mapping", where=where)
        dataset = row.get("dataset", self.config.dataset)
        if dataset != self.config.dataset:
            raise InputError(f"the row is from dataset {dataset!r}, the task is configured for "
                             f"{self.config.dataset!r}", where=where,
                             hint=f"pass -O dataset={dataset}")
        generator = row.get("generator", "ood" if row.get("split") == self.ood_split else "id")
        if generator not in ("id", "ood") or (generator == "ood" and not self.ood_split):
            generator = "id"
        index = row.get("index")
        fields = {"dataset": dataset, "generator": generator, "question": str(row["question"]),
                  "metadata": dict(row["metadata"])}
        return Sample(str(row.get("id", f"row/{where}")), self.name, str(row.get("split", "")),
                      int(index) if isinstance(index, int) else -1, fields, str(row["answer"]))
