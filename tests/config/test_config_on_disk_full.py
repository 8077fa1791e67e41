"""``QueueConfig.onDiskFull``: a choice of two words, ``"refuse"`` unless the file says otherwise."""

from __future__ import annotations

import pytest

from wavemq_edge.config import ConfigError, parse_config


def test_default_is_refuse_and_drop_oldest_is_accepted() -> None:
    assert parse_config("", "x.toml").queue.on_disk_full == "refuse"
    assert parse_config('[QueueConfig]\nonDiskFull = "drop-oldest"\n', "x.toml").queue.on_disk_full == "drop-oldest"


@pytest.mark.parametrize("value", ['"drop-newest"', '"Refuse"', "1"])
def test_other_values_name_key_value_and_choices(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[QueueConfig]\nonDiskFull = {value}\n", "bad.toml")
    text = str(info.value)
    assert text.startswith("bad.toml: QueueConfig.onDiskFull = ")
    assert "must be one of 'refuse', 'drop-oldest'" in text or "must be a string" in text
