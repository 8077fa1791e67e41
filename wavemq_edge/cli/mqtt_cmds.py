"""``wavemq-edge mqtt-passwd``: an argon2id password hash for a device user, as a ``[[MqttConfig.User]]``
entry to append to wavemq.toml (like ``mosquitto_passwd``, but the entry also names the WAVE entity and
proofs the router signs with for that user).

The password is read from the terminal (twice) or, with ``--stdin`` or when standard input is not a
terminal, as one line of standard input; it never appears on the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from .exit_codes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`--help` stays light)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_mqtt_commands", "run_mqtt_passwd"]


def add_mqtt_commands(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("mqtt-passwd", help="hash an MQTT device password and print its [[MqttConfig.User]] entry",
                       description="Prints a [[MqttConfig.User]] entry (argon2id passwordHash) to append to "
                       "wavemq.toml. The password is read from the terminal, or one line of standard input.")
    p.add_argument("username", help="the MQTT user name devices connect with")
    p.add_argument("--entity", metavar="FILE", default="",
                   help="entity secret file (wv mke) the router signs this user's messages with")
    p.add_argument("--namespace", metavar="HASH|FILE", default="",
                   help="namespace hash, or the namespace's entity file, the user's topics live in")
    p.add_argument("--proof", metavar="FILE", action="append", default=[],
                   help="proof file (wv rtprove) granting the entity publish/subscribe; repeatable")
    p.add_argument("--stdin", action="store_true", help="read the password as one line of standard input")


def _password(args: argparse.Namespace) -> str:
    if args.stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    first = getpass.getpass("Password: ")
    if getpass.getpass("Reenter password: ") != first:
        raise ValueError("the passwords do not match")
    return first


def _namespace(text: str) -> str:
    from ..config.values import validate_namespace_hash
    from ..wave import WaveError, format_id, load_entity

    try:
        validate_namespace_hash(text)
        return text
    except ValueError:
        pass
    try:
        return format_id(load_entity(text).id)
    except (WaveError, OSError) as exc:
        raise ValueError(f"--namespace {text!r}: not a namespace hash and not a readable entity file ({exc})") from None


def run_mqtt_passwd(args: argparse.Namespace) -> ExitCode:
    # imported here: the parser is built for every command (`--help` stays light)
    from ..config.render import toml_value
    from ..mqtt.identity import hash_password
    from ..wave import WaveError, load_entity_secret

    try:
        if not args.username or any(c in args.username for c in "\"\n\x00"):
            raise ValueError(f"user name {args.username!r}: must be non-empty, without quotes or control characters")
        namespace = _namespace(args.namespace) if args.namespace else "<namespace hash>"
        if args.entity:
            try:
                load_entity_secret(args.entity)
            except (WaveError, OSError) as exc:
                raise ValueError(f"--entity {args.entity!r}: not a readable entity secret file ({exc})") from None
        password = _password(args)
        if not password:
            raise ValueError("empty password")
    except ValueError as exc:
        print(f"wavemq-edge mqtt-passwd: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (EOFError, KeyboardInterrupt):
        print("wavemq-edge mqtt-passwd: no password given", file=sys.stderr)
        return ExitCode.USAGE
    print("[[MqttConfig.User]]")
    print(f"username = {toml_value(args.username)}")
    print(f"passwordHash = {toml_value(hash_password(password))}")
    print(f"entity = {toml_value(args.entity or '<entity secret file>')}")
    print(f"namespace = {toml_value(namespace)}")
    print(f"proofs = {toml_value(list(args.proof))}")
    return ExitCode.OK
