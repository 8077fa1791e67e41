"""The client subcommands of ``wavemq-edge``: pub, sub, query, unsub, status, demo.

Every failure is one line on stderr and a non-zero exit (:class:`.exit_codes.ExitCode`): 1 for a
refused request or a lost router, 2 for bad arguments (a missing entity, an unreadable file, a bad URI),
75 when the router's disk is full and it refused a publish (``STORAGE_FULL``: retry later).

Environment: ``WAVEMQ_ROUTER`` (the router's address when ``--router`` is not given) and
``WAVEMQ_ENTITY`` (the entity secret file when ``--entity`` is not given; ``status`` uses it too, else a
throwaway entity).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import sys
import time
from typing import Final

from ..client import (
    DEFAULT_ROUTER,
    Client,
    ClientError,
    ReceivedMessage,
    StorageFull,
    SubscriptionEnded,
    resolve_namespace,
)
from ..uri import UriError, parse_pattern, parse_uri
from ..wave import WaveError, create_entity, format_id
from .event_loop import new_event_loop
from .exit_codes import ExitCode

__all__ = ["run_client_command"]

#: How long a client command waits for the router before giving up.
CLIENT_TIMEOUT_S: Final = 15.0


class UsageError(Exception):
    pass


def _router(args: argparse.Namespace) -> str:
    return str(args.router or os.environ.get("WAVEMQ_ROUTER") or DEFAULT_ROUTER)


def _entity_path(args: argparse.Namespace) -> str:
    path = args.entity or os.environ.get("WAVEMQ_ENTITY")
    if not path:
        raise UsageError("--entity FILE is required (or set $WAVEMQ_ENTITY)")
    return str(path)


async def _connect(args: argparse.Namespace) -> Client:
    try:
        return await Client.connect(_router(args), entity=_entity_path(args), proofs=args.proof, wave_db=args.db,
                                    reconnect=False)
    except WaveError as exc:
        raise UsageError(str(exc)) from None


def _payload_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")


def _json_line(msg: ReceivedMessage) -> str:
    import json

    return json.dumps({
        "uri": msg.uri,
        "namespace": format_id(msg.namespace),
        "source": format_id(msg.source),
        "timestamp_ms": msg.timestamp_ms,
        "persist": msg.persist,
        "payload": [{"schema": schema, "text": _payload_text(content)} for schema, content in msg.payload],
    }, separators=(",", ":"))


def _print_message(msg: ReceivedMessage, as_json: bool) -> None:
    line = _json_line(msg) if as_json else f"{msg.uri}\t{_payload_text(msg.data)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _pub(args: argparse.Namespace) -> ExitCode:
    try:
        parse_uri(args.uri)
    except UriError as exc:
        raise UsageError(str(exc)) from None
    data = args.message.encode("utf-8") if args.message is not None else sys.stdin.buffer.read()
    ns = resolve_namespace(args.namespace)
    client = await _connect(args)
    try:
        result = await asyncio.wait_for(client.publish(ns, args.uri, [("text/plain", data)], persist=args.persist),
                                        CLIENT_TIMEOUT_S)
    finally:
        await client.close()
    if result == "duplicate":
        print("wavemq-edge: the router already had this message", file=sys.stderr)
    return ExitCode.OK


def _check_pattern(pattern: str) -> None:
    try:
        parse_pattern(pattern)
    except UriError as exc:
        raise UsageError(str(exc)) from None


async def _sub(args: argparse.Namespace) -> ExitCode:
    _check_pattern(args.pattern)
    if args.count < 0:
        raise UsageError(f"--count {args.count}: must be >= 0")
    ns = resolve_namespace(args.namespace)
    client = await _connect(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    received = 0
    sub = client.subscribe(ns, args.pattern, identifier=args.identifier)
    try:
        await sub.start()
        it = sub.__aiter__()
        while not stop.is_set():
            getter = asyncio.ensure_future(it.__anext__())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, ClientError):
                    await getter
                break
            stopper.cancel()
            msg = getter.result()
            _print_message(msg, args.json)
            received += 1
            if args.count and received >= args.count:
                break
    except StopAsyncIteration:
        pass
    finally:
        # The last message is acknowledged by close(); a durable (--id) subscription stays queueing.
        with contextlib.suppress(ClientError, OSError):
            await sub.close()
        await client.close()
    return ExitCode.OK


async def _query(args: argparse.Namespace) -> ExitCode:
    _check_pattern(args.pattern)
    ns = resolve_namespace(args.namespace)
    client = await _connect(args)
    try:
        messages = await asyncio.wait_for(client.query(ns, args.pattern), CLIENT_TIMEOUT_S)
    finally:
        await client.close()
    for msg in messages:
        _print_message(msg, args.json)
    where = "the designated router" if client.last_query_source == "designated" else "this router's store"
    print(f"# {len(messages)} message(s), answered by {where}", file=sys.stderr)
    return ExitCode.OK


async def _unsub(args: argparse.Namespace) -> ExitCode:
    client = await _connect(args)
    try:
        n = await asyncio.wait_for(client.unsubscribe(args.identifier), CLIENT_TIMEOUT_S)
    finally:
        await client.close()
    print(f"removed {n} subscription(s) {args.identifier!r}")
    return ExitCode.OK


async def _status(args: argparse.Namespace) -> ExitCode:
    # Status needs no grant: any entity may authenticate, so use a throwaway one unless one is given.
    entity = os.environ.get("WAVEMQ_ENTITY")
    secret = create_entity(time.time() - 60, 3600) if not entity else None
    try:
        client = await Client.connect(_router(args), entity=secret if secret is not None else str(entity),
                                      reconnect=False)
    except WaveError as exc:
        raise UsageError(str(exc)) from None
    try:
        status = await asyncio.wait_for(client.status(), CLIENT_TIMEOUT_S)
    finally:
        await client.close()
    from ..ops.status_view import derive, render_status

    if args.json:
        import json

        print(json.dumps(derive(status), sort_keys=True))
        return ExitCode.OK
    print(render_status(status))
    if status.get("detail") == "summary":
        # paths, queue ids and uplink addresses are for the local operator only (README, Agent protocol)
        print("(a summary: full detail goes to root or the router's user over its Unix socket: "
              "wavemq-edge status --router unix:PATH, LocalConfig.unixSocket)", file=sys.stderr)
    return ExitCode.OK


async def _demo(args: argparse.Namespace) -> ExitCode:
    from .demo import demo  # the demo runs a router in this process: the server is imported only for it

    return await demo(args)


#: The commands that run an event loop for long (uvloop); the others make one request.
_STREAMING: Final = ("sub", "demo")
_COMMANDS: Final = {"pub": _pub, "sub": _sub, "query": _query, "unsub": _unsub, "status": _status, "demo": _demo}


def run_client_command(args: argparse.Namespace) -> ExitCode:
    # uvloop (~8 ms to import) pays off for a stream of deliveries, not for one request and its reply.
    loop = new_event_loop() if args.command in _STREAMING else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_COMMANDS[args.command](args))
    except UsageError as exc:
        print(f"wavemq-edge {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except SubscriptionEnded as exc:
        print(f"wavemq-edge {args.command}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except StorageFull as exc:
        print(f"wavemq-edge {args.command}: not accepted ({exc.code} STORAGE_FULL): {exc.reason}; publish it again "
              "later", file=sys.stderr)
        return ExitCode.TEMPFAIL
    except (ClientError, asyncio.TimeoutError) as exc:
        text = str(exc) or "timed out waiting for the router"
        print(f"wavemq-edge {args.command}: {text}", file=sys.stderr)
        return ExitCode.FAILURE
    except UriError as exc:
        print(f"wavemq-edge {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except WaveError as exc:
        print(f"wavemq-edge {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        loop.close()
