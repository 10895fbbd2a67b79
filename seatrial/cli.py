"""The command line: ``python -m seatrial <area> <action>``; nox sessions call it.

This is the edge where ``SeatrialError`` becomes one readable line and an exit code; anything
else escaping is a bug and is reported as one (exit 1, with the traceback kept for the report).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seatrial.errors import ConfigError, ExitCode, SeatrialError


def _cluster(args: argparse.Namespace) -> int:
    from seatrial.cluster.local import LocalCluster

    cluster = LocalCluster()
    if args.action == "up":
        cluster.up()
        for line in cluster.status().lines():
            print(line)
    elif args.action == "down":
        cluster.down()
    elif args.action == "status":
        st = cluster.status()
        for line in st.lines():
            print(line)
        if not st.running or st.phase != "ready":
            return ExitCode.CLUSTER
    elif args.action in ("kill-node", "revive-node"):
        if not args.node:
            raise ConfigError(f"{args.action} needs a real node's name, e.g. {args.action} real-cpu-1")
        if args.action == "kill-node":
            cluster.kill_node(args.node)
        else:
            cluster.revive_node(args.node)
        print(f"{args.node}: {'killed' if args.action == 'kill-node' else 'Ready again'}")
    elif args.action == "build":
        from seatrial.cluster import build

        bins = build.ensure_binaries()
        for name, path in sorted(bins.paths.items()):
            print(f"{name:<24} {path}")
    return ExitCode.OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seatrial", description=__doc__)
    sub = p.add_subparsers(dest="area", required=True)
    c = sub.add_parser("cluster", help="the local cluster: build, up, down, status")
    c.add_argument("action", choices=["up", "down", "status", "build", "kill-node", "revive-node"])
    c.add_argument("node", nargs="?", help="the real node, for kill-node and revive-node")
    c.set_defaults(func=_cluster)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line
        return ExitCode.USAGE if exc.code else ExitCode.OK
    try:
        return int(args.func(args))
    except SeatrialError as exc:
        print(f"seatrial: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("seatrial: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
