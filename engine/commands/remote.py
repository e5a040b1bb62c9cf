"""``promptbank --engine ADDRESS remote check|forget`` and the host's side, ``remote-host``."""

from __future__ import annotations

import argparse

from engine.commands._common import emit
from engine.errors import PromptbankError


def register(sub: argparse._SubParsersAction) -> None:
    remote = sub.add_parser("remote", help="the remote engine given with --engine: test the "
                            "connection, or delete the host's copy of this library")
    rsub = remote.add_subparsers(dest="remote_action", metavar="ACTION", required=True)
    check = rsub.add_parser("check", help="connect and say what the host has: its Promptbank, "
                            "its copy of this library, whether a worker runs there")
    check.set_defaults(func=cmd_check)
    forget = rsub.add_parser("forget", help="delete the host's copy of this library (refused "
                             "while its worker runs); the library here stays as it is")
    forget.set_defaults(func=cmd_forget)
    host = sub.add_parser("remote-host", help="(run by the remote engine over ssh) the host's "
                          "side of a connection: JSON lines on stdin/stdout")
    host.add_argument("--library-id", required=True, help="the id of the user's library")
    host.set_defaults(func=cmd_host)


def _relay(args: argparse.Namespace):
    from engine.api.engine_target import EngineTarget
    from engine.library.library import Library
    from engine.remote.protocol import worker_options
    from engine.remote.relay import Relay

    target = EngineTarget.parse(args.engine_address, args.engine_program)
    if target is None:
        raise PromptbankError("`promptbank remote` needs a remote engine.",
                              hint="Give --engine ssh://[user@]host or --engine-command.")
    return Relay(target, Library(args.library).root, worker_options(args))


def cmd_check(args: argparse.Namespace) -> int:
    relay = _relay(args)
    greeting = relay.open()
    assert relay.upstream
    relay.upstream.close()
    last = relay.state.synced.get(relay.target.label)
    copy = ("none yet" if not greeting.digest else
            "up to date" if greeting.digest == last else "holds results not collected here")
    found = {"host": relay.target.host, "engine": greeting.engine, "copy": greeting.mirror,
             "copy_state": copy, "worker": "running" if greeting.worker else "not running",
             "sent_bytes": relay.upstream.sent, "received_bytes": relay.upstream.received}
    emit(args, found)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    relay = _relay(args)
    relay.open()
    mirror = relay.forget()
    assert relay.upstream
    relay.upstream.close()
    emit(args, {"deleted": mirror}, f"Deleted the host's copy {mirror}.")
    return 0


def cmd_host(args: argparse.Namespace) -> int:
    from engine.remote.host import HostAgent
    from engine.remote.protocol import worker_options
    from engine.support.stdio import protocol_stdin, protocol_stdout_bytes

    agent = HostAgent(args.library_id, worker_options(args), protocol_stdout_bytes())
    return agent.serve(protocol_stdin())
