"""``wavemq-edge mqtt-passwd``: the printed entry loads as config and its hash verifies the password."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from wavemq_edge.cli.main import main
from wavemq_edge.config import parse_config
from wavemq_edge.mqtt.identity import verify_password
from wavemq_edge.wave import create_entity, format_id, save_entity_secret

NS = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="


def test_entry_loads_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    ent = tmp_path / "dev.ent"
    secret = create_entity(1_700_000_000.0, 10 * 365 * 86400)
    save_entity_secret(ent, secret)
    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2\n"))
    assert main(["mqtt-passwd", "dev", "--entity", str(ent), "--namespace", str(ent), "--stdin"]) == 0
    out = capsys.readouterr().out
    config = parse_config("[MqttConfig]\n" + out, base_dir=tmp_path, state_dir=tmp_path)
    (user,) = config.mqtt.users
    assert user.username == "dev" and user.entity == ent and user.namespace == format_id(secret.id)
    assert verify_password(user.password_hash, b"hunter2") and not verify_password(user.password_hash, b"hunter3")


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["mqtt-passwd", "dev", "--stdin"], "\n", "empty password"),
    (["mqtt-passwd", "dev", "--namespace", "nope"], "pw\n", "not a namespace hash"),
    (["mqtt-passwd", 'de"v'], "pw\n", "user name"),
])
def test_bad_input_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
                            stdin: str, message: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
