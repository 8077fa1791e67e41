"""The one exception of the config layer."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """The configuration is invalid. ``problems`` lists every problem found, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            text = f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)
