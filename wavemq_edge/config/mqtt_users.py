"""``[[MqttConfig.User]]`` entries and the cross-key rules of ``[MqttConfig]`` (the loader's helpers).

A user needs all of ``username`` (unique), ``passwordHash`` (an argon2id hash made by ``wavemq-edge
mqtt-passwd``), ``entity`` (the entity secret file the router signs with for it) and ``namespace`` (a
namespace hash); ``proofs`` (``wv rtprove`` files) is optional but without one every publish and
subscribe is refused by the grant check. The files are read when the server starts, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import MqttUserConfig
from .schema import MQTT_USER_KEYS
from .values import validate_namespace_hash

if TYPE_CHECKING:
    from .load import _Checker

__all__ = ["check_mqtt", "mqtt_users"]

ARGON2ID_PREFIX = "$argon2id$"


def mqtt_users(entry: tuple[str, Any] | None, check: _Checker) -> tuple[MqttUserConfig, ...]:
    from .load import _fold

    if entry is None:
        return ()
    spelled, items = entry
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        check.fail(f"MqttConfig.{spelled}", items, "must be an array of tables ([[MqttConfig.User]])")
        return ()
    out: list[MqttUserConfig] = []
    for i, item in enumerate(items):
        where = f"MqttConfig.User[{i}]"
        if not isinstance(item, dict):
            check.fail(where, item, "must be a table with username, passwordHash, entity and namespace")
            continue
        keys = {k: v for k, (_spelled, v) in _fold(item, where, list(MQTT_USER_KEYS), check).items()}
        user = _user(where, keys, check, [u.username for u in out])
        if user is not None:
            out.append(user)
    return tuple(out)


def _user(where: str, keys: dict[str, Any], check: _Checker, seen: list[str]) -> MqttUserConfig | None:
    problems = len(check.problems)
    for k in ("username", "passwordHash", "entity", "namespace"):
        if k not in keys:
            check.problems.append(f"{where}.{k} is missing")
        elif not isinstance(keys[k], str) or not keys[k]:
            check.fail(f"{where}.{k}", keys[k], "must be a non-empty string")
    if len(check.problems) > problems:
        return None
    if keys["username"] in seen:
        check.fail(f"{where}.username", keys["username"], "repeats an earlier user")
    if not keys["passwordHash"].startswith(ARGON2ID_PREFIX):
        check.fail(f"{where}.passwordHash", keys["passwordHash"],
                   "must be an argon2id hash ($argon2id$...) made by `wavemq-edge mqtt-passwd`")
    try:
        validate_namespace_hash(keys["namespace"])
    except ValueError as exc:
        check.fail(f"{where}.namespace", keys["namespace"], str(exc))
    proofs = keys.get("proofs", [])
    if not isinstance(proofs, list) or not all(isinstance(p, str) and p for p in proofs):
        check.fail(f"{where}.proofs", proofs, "must be a list of proof file paths (wv rtprove)")
        proofs = []
    if len(check.problems) > problems:
        return None
    return MqttUserConfig(keys["username"], keys["passwordHash"], check.path(keys["entity"]), keys["namespace"],
                          tuple(check.path(p) for p in proofs))


def check_mqtt(values: dict[str, object], check: _Checker) -> None:
    """Rules across keys: TLS needs both files; anonymous access needs its namespace."""
    if (values.get("cert_file") is None) != (values.get("key_file") is None):
        check.problems.append("MqttConfig.certFile and MqttConfig.keyFile go together: set both for TLS, or neither")
    if values.get("anonymous_entity") is not None:
        ns = values.get("anonymous_namespace")
        try:
            validate_namespace_hash(ns if isinstance(ns, str) else "")
        except ValueError as exc:
            check.fail("MqttConfig.anonymousNamespace", ns, f"{exc} (required with anonymousEntity)")
