"""[MqttConfig] and [[MqttConfig.User]]: defaults (off), a full entry, round trip, every rule's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavemq_edge.config import ConfigError, load_default_config, parse_config

NS = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="
HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
USER = f'''
[MqttConfig]
listenAddr = "127.0.0.1:1883"
[[MqttConfig.User]]
username = "sensor1"
passwordHash = "{HASH}"
entity = "sensor1.ent"
namespace = "{NS}"
proofs = ["sensor1.proof"]
'''


def test_off_by_default(tmp_path: Path) -> None:
    c = load_default_config(state_dir=tmp_path)
    assert c.mqtt.listen_addr is None and c.mqtt.users == () and c.mqtt.anonymous_entity is None
    assert c.mqtt.max_packet_size == 262144 and c.mqtt.receive_maximum == 32


def test_user_entry_and_round_trip(tmp_path: Path) -> None:
    c = parse_config(USER, base_dir=tmp_path, state_dir=tmp_path)
    assert str(c.mqtt.listen_addr) == "127.0.0.1:1883"
    (u,) = c.mqtt.users
    assert (u.username, u.password_hash, u.entity, u.namespace, u.proofs) == (
        "sensor1", HASH, tmp_path / "sensor1.ent", NS, (tmp_path / "sensor1.proof",))
    again = parse_config(c.to_toml(), base_dir=tmp_path, state_dir=tmp_path)
    assert again.mqtt == c.mqtt


@pytest.mark.parametrize(("text", "message"), [
    ('[MqttConfig]\ncertFile = "c.pem"', "certFile and MqttConfig.keyFile go together"),
    ('[MqttConfig]\nanonymousEntity = "a.ent"', "MqttConfig.anonymousNamespace"),
    ('[MqttConfig]\nlistenAddr = "nohost"', "MqttConfig.listenAddr"),
    ('[[MqttConfig.User]]\nusername = "a"', "MqttConfig.User[0].passwordHash is missing"),
    (USER.replace(HASH, "plain"), "must be an argon2id hash"),
    (USER.replace(NS, "nope"), "MqttConfig.User[0].namespace"),
    (USER.replace('proofs = ["sensor1.proof"]', "proofs = 3"), "MqttConfig.User[0].proofs"),
    (USER + USER.split("[MqttConfig]\nlistenAddr = \"127.0.0.1:1883\"")[1], "repeats an earlier user"),
    (USER.replace("username", "usrname"), "did you mean 'username'"),
])
def test_problems_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, base_dir=tmp_path, state_dir=tmp_path)
    assert message in str(info.value)
