"""The command line: ``python -m seatrial <area> <action>``; nox sessions call it.

This is the edge where ``SeatrialError`` becomes one readable line and an exit code; anything
else escaping is a bug and is reported as one: a line naming it, the traceback kept in
``reports/crashes/``, and the exit code of the area it broke (3 for the cluster and the stack).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seatrial.errors import ClusterError, ConfigError, ExitCode, SeatrialError, unexpected

ROOT = Path(__file__).resolve().parents[1]


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
        bins, node_images, _ = cluster.prepare()
        for name, path in sorted(bins.paths.items()):
            print(f"{name:<24} {path}")
        for image in node_images:
            print(f"{image.ref:<40} {image.archive}")
    return ExitCode.OK


def _stack(args: argparse.Namespace) -> int:
    import os

    from seatrial import kube, profile, stack
    from seatrial.cluster.local import LocalCluster

    if args.kubeconfig or args.context:
        path = Path(args.kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
        target = kube.Target(path, args.context)
        profile.load(Path(args.profile) if args.profile else None).safety.check(kube.context_name(target))
        st = stack.Stack(target)
    elif args.action == "deploy":
        st = stack.on_target(None)  # starts the local cluster when it is not up
    else:
        local = LocalCluster()
        if local.status().phase != "ready":
            raise ClusterError("the local cluster is not running", hint="nox -s cluster -- up, or name a cluster")
        st = stack.Stack(local.target(), local=local)
    if args.action == "deploy":
        overlay = stack.overlay_dir(args.overlay or ("local" if st.local is not None else "staging"))
        done = st.deploy(overlay, namespace=args.namespace, timeout=args.timeout, cleanup_on_failure=args.cleanup)
        print(f"namespace: {done.namespace}")
        print(f"ready in: {done.seconds:.1f}s")
    elif args.action == "delete":
        for ns in [args.namespace] if args.namespace else st.namespaces():
            st.delete(ns)
    else:
        for line in st.status():
            print(line)
    return ExitCode.OK


def _cleanup(args: argparse.Namespace) -> int:
    """What runs killed with ``kill -9`` left: listed (``--dry-run``) or restored and deleted."""
    import os

    from seatrial import cleanup, kube, profile
    from seatrial.cluster.local import LocalCluster

    local = LocalCluster()
    if args.kubeconfig or args.context:
        path = Path(args.kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
        target = kube.Target(path, args.context)
        profile.load(Path(args.profile) if args.profile else None).safety.check(kube.context_name(target))
        host = local if local.serves(target) else None
    else:
        if local.status().phase != "ready":
            print("seatrial: the local cluster is not running: nothing of a run can be left on it")
            return ExitCode.OK
        target, host = local.target(), local
    api = kube.api_client(target)
    kube.server_version(api)
    found, failed = cleanup.sweep(api, host=host, dry_run=args.dry_run, say=lambda m: print(f"seatrial: {m}"))
    if args.dry_run:
        for d in found:
            print(f"would {d.describe()}")
        print(f"seatrial: {len(found)} thing(s) left by runs no longer alive; nothing changed (--dry-run)")
    else:
        undone = len(found) - len([f for f in failed if not f.startswith("not searched")])
        print(f"seatrial: cleaned up {undone} of {len(found)} thing(s) left by runs no longer alive")
    for line in failed:
        print(f"seatrial: error: {line}", file=sys.stderr)
    return ExitCode.FAILED if failed else ExitCode.OK


def _report(args: argparse.Namespace) -> int:
    from seatrial import report
    from seatrial.cluster import build

    root = ROOT / "reports"
    run_dir = Path(args.run_dir) if args.run_dir else root / "latest"
    if not run_dir.exists():
        raise ConfigError(f"no run at {run_dir}", hint="run nox -s conformance first")
    index = report.build_html(run_dir.resolve(), build.cache_root())
    print(f"HTML report: {index}")
    print(f"open it with: xdg-open {index}   (or python3 -m http.server -d {index.parent})")
    return ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    from seatrial import lint

    return lint.main(args.paths, fail_on=args.fail_on, pools=args.pools, as_json=args.json, values=args.values)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seatrial", description=__doc__)
    sub = p.add_subparsers(dest="area", required=True)
    c = sub.add_parser("cluster", help="the local cluster: build, up, down, status")
    c.add_argument("action", choices=["up", "down", "status", "build", "kill-node", "revive-node"])
    c.add_argument("node", nargs="?", help="the real node, for kill-node and revive-node")
    c.set_defaults(func=_cluster)
    s = sub.add_parser("stack", help="the reference stack: deploy, delete, status")
    s.add_argument("action", choices=["deploy", "delete", "status"])
    s.add_argument("namespace", nargs="?", help="deploy into / delete this namespace (default: a fresh one / all)")
    s.add_argument("--overlay", help="local, staging or a kustomize dir (default: local on the local cluster)")
    s.add_argument("--kubeconfig", help="a cluster other than the local one")
    s.add_argument("--context", help="kubeconfig context")
    s.add_argument("--profile", help="profile whose safety.refuseContexts applies (default: the reference one)")
    s.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every workload (default 300)")
    s.add_argument("--cleanup", action="store_true", help="delete the namespace when a deploy fails (default: keep)")
    s.set_defaults(func=_stack)
    cl = sub.add_parser("cleanup", help="restore or delete what runs killed with kill -9 left behind")
    cl.add_argument("--dry-run", action="store_true", help="list what would be restored or deleted; change nothing")
    cl.add_argument("--kubeconfig", help="a cluster other than the local one")
    cl.add_argument("--context", help="kubeconfig context")
    cl.add_argument("--profile", help="profile whose safety.refuseContexts applies (default: the reference one)")
    cl.set_defaults(func=_cleanup)
    ck = sub.add_parser(
        "check", help="static checks as a linter: files, kustomize dirs or trees; no pytest, no cluster"
    )
    ck.add_argument("paths", nargs="+", metavar="PATH", help="manifests to judge, each on its own")
    ck.add_argument("--fail-on", choices=["critical", "high", "medium", "low"], default="high",
                    help="lowest severity that fails (default high)")  # fmt: skip
    ck.add_argument("--pools", help="node pool files to judge capacity against (default: the manifests alone)")
    ck.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    ck.add_argument("--values", action="append", default=[], help="Helm values for the charts given (repeatable)")
    ck.set_defaults(func=_check)
    r = sub.add_parser("report", help="build the HTML report of a run (default: reports/latest)")
    r.add_argument("run_dir", nargs="?", help="a reports/<run-id> directory")
    r.set_defaults(func=_report)
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
    except Exception as exc:
        code = ExitCode.CLUSTER if args.area in ("cluster", "stack", "cleanup") else ExitCode.FAILED
        doing = f"{args.area} {getattr(args, 'action', '')}".strip()
        err = unexpected(exc, doing=doing, code=code, logs=ROOT / "reports" / "crashes")
        print(f"seatrial: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("seatrial: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
