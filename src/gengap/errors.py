"""User-facing errors: what is wrong, where, and how to fix it.

The CLI turns an `InputError` into a one-paragraph message and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input from a user or a file: a clear message, exit code 2 from the CLI."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
