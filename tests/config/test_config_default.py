"""The embedded default (``wavemq-edge run`` with no file) is generated from the schema, so it cannot drift
from the defaults the loader applies; it still means what the hand-written file it replaced meant."""

from __future__ import annotations

from pathlib import Path

from wavemq_edge.config import Environment, default_config_toml, load_default_config, parse_config
from wavemq_edge.config.schema import SECTIONS

#: The hand-written embedded default this generator replaced, verbatim.
FORMER_DEFAULT = """\
# wavemq_edge embedded default: a single site router on loopback.
# Relative paths are under the state directory.
[WaveConfig]
  database = "wave"
  defaultToUnrevoked = true

[QueueConfig]
  queueDataStore = "queue"
  queueExpiry = 86400
  subscriptionQueueMaxLength = 10000
  subscriptionQueueMaxSize = 100
  trunkingQueueMaxLength = 100000
  trunkingQueueMaxSize = 1000
  flushInterval = 30

[LocalConfig]
  listenAddr = "127.0.0.1:4516"

[PeerConfig]
  listenAddr = "127.0.0.1:4515"

[RoutingConfig]
  PersistDataStore = "persist"
  RouterEntityFile = "router.ent"
"""

ENV = Environment.from_mapping({}, uid=1000)


def test_embedded_default_means_what_the_former_file_meant(tmp_path: Path) -> None:
    former = parse_config(FORMER_DEFAULT, "<embedded default>", base_dir=tmp_path, state_dir=tmp_path,
                          environment=ENV)
    assert load_default_config(tmp_path, environment=ENV) == former


def test_embedded_default_lists_every_key_at_its_schema_default(tmp_path: Path) -> None:
    text = default_config_toml()
    for section, keys in SECTIONS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert (f"  {key.name} = " in text) != key.ignored, key.name
    # Everything in it is a default: an empty file gives the same configuration.
    empty = parse_config("", "<embedded default>", base_dir=tmp_path, state_dir=tmp_path, environment=ENV)
    assert load_default_config(tmp_path, environment=ENV) == empty


def test_check_config_of_the_default_round_trips(tmp_path: Path) -> None:
    c = load_default_config(tmp_path, environment=ENV)
    text = c.to_toml()
    assert text.startswith("# effective configuration of <embedded default>\n")
    again = parse_config(text, c.source, base_dir=tmp_path, state_dir=tmp_path, environment=ENV)
    assert again == c
