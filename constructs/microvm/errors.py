"""One error type for every wrong input, and the one way its message is written.

Every message names the field, the bad value, the rule and the fix, in one lower-case sentence, so a
user reads what to change without opening the library.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A construct or app input is invalid. Raised before anything is synthesized."""

    def __init__(self, field: str, value: Any, rule: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        self.fix = fix
        super().__init__(f"{field} is {value!r}: {rule}; {fix}")
