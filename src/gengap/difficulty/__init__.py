"""DC-SFT's data side: per-sample difficulty, curated SFT sets and the difficulty report.

- `estimate_difficulty` (``gengap difficulty``): k rollouts per sample -> pass rate -> bucket,
  resumable after any kill and shardable across processes;
- `curate` (``gengap curate``): all / E / M / H / EM / balanced / EM + hard share SFT sets;
- `write_report` (``gengap difficulty-report``): histogram, category breakdown, examples.
"""

from gengap.difficulty.curate import curate, load_curated, select
from gengap.difficulty.estimate import (
    DifficultyConfig,
    ShardSpec,
    bucket_of,
    estimate_difficulty,
    load_records,
    merge_shards,
)
from gengap.difficulty.report import write_report

__all__ = [
    "DifficultyConfig",
    "ShardSpec",
    "bucket_of",
    "curate",
    "estimate_difficulty",
    "load_curated",
    "load_records",
    "merge_shards",
    "select",
    "write_report",
]
