"""Writing tasks to disk in other tools' formats: JSONL rows (`gengap data`)."""

from gengap.export.rows import export_split

__all__ = ["export_split"]
