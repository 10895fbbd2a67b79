"""Build the local cluster's binaries from upstream Go modules, once, into a versioned cache.

No image registry or release download is reachable on our machines, so every binary comes from
the Go module proxy: Kubernetes through a small wrapper module (``k8s.io/kubernetes`` pins its
staging modules at ``v0.0.0``, which the proxy does not serve, so the wrapper replaces each with
the matching ``v0.X.Y``), etcd through a wrapper too (its own go.mod has relative replaces), and
KWOK with a plain ``go install``. A binary is rebuilt only when its recipe (version, ldflags)
changes; a second bring-up builds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from seatrial.cluster import versions
from seatrial.errors import BuildError, ToolMissingError

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_BINARIES = ("kubelet", "kube-proxy")
_KUBE_CMD = "k8s.io/kubernetes/cmd/"
_STAGING = re.compile(r"^\s*(?:require\s+)?(k8s\.io/[A-Za-z0-9._-]+)\s+v0\.0\.0\s*$")
MIN_GO = (1, 24)


def cache_root() -> Path:
    """Binaries outlive a clone: CI and every fresh checkout on this machine reuse them."""
    explicit = os.environ.get("SEATRIAL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seatrial"


def go_binary() -> str:
    """The Go toolchain, or a message that says how to get one."""
    go = os.environ.get("SEATRIAL_GO") or shutil.which("go")
    if not go:
        raise ToolMissingError(
            "the Go toolchain was not found on PATH: the local cluster's Kubernetes, etcd and "
            "KWOK binaries are built from their Go modules on first use",
            hint=f"install Go {'.'.join(map(str, MIN_GO))} or newer and put `go` on PATH "
            "(or set SEATRIAL_GO), or point seatrial at an existing cluster with --kubeconfig",
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if out.returncode != 0 or not match:
        raise ToolMissingError(f"{go} does not run as a Go toolchain: {out.stderr.strip()[:200]}")
    if (int(match[1]), int(match[2])) < MIN_GO:
        raise ToolMissingError(
            f"Go {match[1]}.{match[2]} is too old to build Kubernetes {versions.KUBERNETES}",
            hint=f"install Go {'.'.join(map(str, MIN_GO))} or newer",
        )
    return go


def version_ldflags(kubernetes: str = versions.KUBERNETES) -> str:
    """Without these the binaries report v0.0.0-master, which kwok and kubectl's skew check read."""
    major, minor, _ = kubernetes.lstrip("v").split(".")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={kubernetes}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.gitCommit=0000000000000000000000000000000000000000",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def staging_modules(upstream_go_mod: str) -> list[str]:
    """The modules k8s.io/kubernetes requires at v0.0.0 (its staging tree)."""
    return sorted({m[1] for line in upstream_go_mod.splitlines() if (m := _STAGING.match(line))})


def kubernetes_wrapper_go_mod(kubernetes: str, staging: Sequence[str]) -> str:
    pin = versions.staging_version(kubernetes)
    replaces = "\n".join(f"\t{m} => {m} {pin}" for m in staging)
    return (
        "module seatrial.local/kubernetes\n\n"
        f"go {versions.GO_DIRECTIVE}\n\n"
        f"godebug default={versions.GODEBUG_DEFAULT}\n\n"
        f"require k8s.io/kubernetes {kubernetes}\n\n"
        f"replace (\n{replaces}\n)\n"
    )


def tools_go(packages: Sequence[str]) -> str:
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


@dataclass
class Recipe:
    """What one cached binary is built from; its digest is the cache key."""

    component: str
    version: str
    binary: str
    package: str
    ldflags: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        blob = json.dumps([self.component, self.version, self.binary, self.package, self.ldflags, self.env])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the local cluster runs."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Two test workers or two terminals must not build the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Progress:
    """Prints which binaries are building and how far, every few seconds, while ``go`` runs."""

    def __init__(self, label: str, log: Path, every: float = 20.0) -> None:
        self.label, self.log, self.every = label, log, every
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                lines = self.log.read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            packages = sum(1 for line in lines if line and not line.startswith(("go:", "#", " ")))
            say(f"  … {self.label}: {packages} packages compiled, {self.elapsed()}")

    def elapsed(self) -> str:
        secs = int(time.monotonic() - self.start)
        return f"{secs // 60}m{secs % 60:02d}s"

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def record_timing(root: Path, what: str, seconds: float) -> None:
    """Keep how long each cold build took, so ``nox -s bench`` can report it on later, warm runs."""
    path = root / "timings.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[what] = {"seconds": round(seconds, 1), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(data, indent=2))


def read_timings(root: Path | None = None) -> dict[str, dict[str, object]]:
    try:
        return dict(json.loads(((root or cache_root()) / "timings.json").read_text()))
    except (OSError, ValueError):
        return {}


def say(message: str) -> None:
    print(f"seatrial: {message}", file=sys.stderr, flush=True)


def _run_go(args: list[str], *, cwd: Path, log: Path, env: dict[str, str], label: str) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run(args, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(
            f"building {label} failed (go exited {proc.returncode}); full log: {log}\n{tail}",
            hint="a network error means the Go module proxy could not be reached; retry, or "
            "set GOPROXY/GOFLAGS=-mod=mod as your site requires",
        )


def _go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false -mod=mod").strip()
    env.update(extra or {})
    return env


_MAJOR_SUFFIX = re.compile(r"^v(?:[2-9]|[1-9][0-9]+)$")  # as cmd/go's isVersionElement


def go_output_name(package: str) -> str:
    """The file name ``go build -o DIR/`` and ``go install`` give a main package's binary.

    Go names it after the import path's last element, or the one before it when the last is a
    major-version suffix: ``go.etcd.io/etcd/server/v3`` becomes ``server``, not ``etcd``. The
    cluster asks for binaries by *its* names, so the build renames them (see ``_install``)."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and _MAJOR_SUFFIX.match(parts[-1]):
        return parts[-2]
    return parts[-1]


def _install(recipes: Sequence[Recipe], built: Path, dest: Path, log: Path) -> None:
    """Copy each built binary into the cache under the name the cluster expects."""
    dest.mkdir(parents=True, exist_ok=True)
    for r in recipes:
        source = built / go_output_name(r.package)
        if not source.is_file():
            found = ", ".join(sorted(p.name for p in built.iterdir())) if built.is_dir() else "nothing"
            raise BuildError(
                f"building {r.component} {r.version} produced no {source.name} for {r.binary} "
                f"(the build wrote: {found}); full log: {log}",
                hint="this is a bug in seatrial's build recipe for this version; please report it",
            )
        target = dest / r.binary
        tmp = target.with_suffix(".new")
        shutil.copy2(source, tmp)
        tmp.replace(target)
        (dest / f"{r.binary}.recipe").write_text(r.digest())


def _missing(recipes: Sequence[Recipe], dest: Path) -> list[Recipe]:
    out = []
    for r in recipes:
        stamp = dest / f"{r.binary}.recipe"
        if not (dest / r.binary).exists() or not stamp.exists() or stamp.read_text() != r.digest():
            out.append(r)
    return out


def kubernetes_recipes(binaries: Sequence[str]) -> list[Recipe]:
    ldflags = version_ldflags()
    return [
        Recipe("kubernetes", versions.KUBERNETES, b, _KUBE_CMD + b, ldflags, {"CGO_ENABLED": "0"}) for b in binaries
    ]


def _build_wrapper(
    component: str,
    version: str,
    recipes: Sequence[Recipe],
    *,
    go_mod: Callable[[str, Path, Path, dict[str, str]], str],
    root: Path | None,
    note: str,
) -> dict[str, Path]:
    """Build ``recipes`` from a wrapper module (its go.mod from ``go_mod``) into the versioned cache.

    Only binaries whose recipe stamp is missing or stale are built, in one ``go build`` so shared
    packages compile once; a lock keeps two processes from building the same thing at once."""
    root = root or cache_root()
    dest = root / "bin" / f"{component}-{version}"
    with lock(root / "locks" / f"{component}.lock"):
        todo = _missing(recipes, dest)
        if todo:
            go = go_binary()
            work = root / "src" / f"{component}-{version}"
            work.mkdir(parents=True, exist_ok=True)
            log = root / "logs" / f"{component}-{version}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            env = _go_env(todo[0].env)
            names = ", ".join(r.binary for r in todo)
            say(f"building {names} ({component} {version}) from Go modules ({note}); later runs reuse {dest}")
            with _Progress(component, log) as progress:
                (work / "go.mod").write_text(go_mod(go, work, log, env))
                (work / "tools.go").write_text(tools_go([r.package for r in recipes]))
                _run_go([go, "mod", "tidy"], cwd=work, log=log, env=env, label=f"the {component} wrapper module")
                out = work / "out"
                out.mkdir(exist_ok=True)
                _run_go(
                    [
                        go,
                        "build",
                        "-v",
                        "-trimpath",
                        "-ldflags",
                        todo[0].ldflags,
                        "-o",
                        str(out) + "/",
                        *(r.package for r in todo),
                    ],
                    cwd=work,
                    log=log,
                    env=env,
                    label=names,
                )
                _install(todo, out, dest, log)
                record_timing(root, f"build {names}", time.monotonic() - progress.start)
                say(f"built {names} in {progress.elapsed()}")
    return {r.binary: dest / r.binary for r in recipes}


def build_kubernetes(binaries: Sequence[str] = KUBE_BINARIES, *, root: Path | None = None) -> dict[str, Path]:
    def go_mod(go: str, work: Path, log: Path, env: dict[str, str]) -> str:
        upstream = _upstream_go_mod(go, work, log, env)
        return kubernetes_wrapper_go_mod(versions.KUBERNETES, staging_modules(upstream))

    return _build_wrapper(
        "kubernetes",
        versions.KUBERNETES,
        kubernetes_recipes(binaries),
        go_mod=go_mod,
        root=root,
        note="about 7 minutes cold on 2 cores",
    )


def _upstream_go_mod(go: str, work: Path, log: Path, env: dict[str, str]) -> str:
    """Ask the module proxy for k8s.io/kubernetes' own go.mod: it lists the staging modules."""
    probe = work / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "go.mod").write_text("module seatrial.local/probe\n")
    with log.open("a") as fh:
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
            cwd=probe,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        fh.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BuildError(
            f"could not download k8s.io/kubernetes@{versions.KUBERNETES}: {proc.stderr.strip()[:400]}; log: {log}"
        )
    return Path(json.loads(proc.stdout)["GoMod"]).read_text()


def build_etcd(*, root: Path | None = None) -> Path:
    recipe = Recipe("etcd", versions.ETCD, "etcd", "go.etcd.io/etcd/server/v3", "-s -w", {"CGO_ENABLED": "0"})

    def go_mod(go: str, work: Path, log: Path, env: dict[str, str]) -> str:
        del go, work, log, env
        return f"module seatrial.local/etcd\n\ngo {versions.GO_DIRECTIVE}\n\nrequire {recipe.package} {versions.ETCD}\n"

    return _build_wrapper("etcd", versions.ETCD, [recipe], go_mod=go_mod, root=root, note="about a minute cold")["etcd"]


def _go_install(component: str, version: str, package: str, binary: str, *, root: Path | None, note: str) -> Path:
    """Build a module that has no replace directives with a plain ``go install``."""
    root = root or cache_root()
    dest = root / "bin" / f"{component}-{version}"
    recipe = Recipe(component, version, binary, package, "-s -w", {"CGO_ENABLED": "0"})
    with lock(root / "locks" / f"{component}.lock"):
        if _missing([recipe], dest):
            go = go_binary()
            log = root / "logs" / f"{component}-{version}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            out = root / "src" / f"{component}-{version}"
            out.mkdir(parents=True, exist_ok=True)
            env = _go_env(recipe.env | {"GOBIN": str(out)})
            env["GOFLAGS"] = env["GOFLAGS"].replace("-mod=mod", "").strip()
            say(f"building {component} {version} from its Go module ({note})")
            with _Progress(component, log) as progress:
                _run_go(
                    [go, "install", "-v", "-trimpath", "-ldflags", recipe.ldflags, f"{package}@{version}"],
                    cwd=out,
                    log=log,
                    env=env,
                    label=component,
                )
                _install([recipe], out, dest, log)
                record_timing(root, f"build {component}", time.monotonic() - progress.start)
                say(f"built {component} in {progress.elapsed()}")
    return dest / binary


def build_kwok(*, root: Path | None = None) -> Path:
    return _go_install(
        "kwok", versions.KWOK, "sigs.k8s.io/kwok/cmd/kwok", "kwok", root=root, note="about 2 minutes cold"
    )


def build_helm(*, root: Path | None = None) -> Path:
    return _go_install("helm", versions.HELM, "helm.sh/helm/v4/cmd/helm", "helm", root=root, note="a few minutes cold")


def build_helm3(*, root: Path | None = None) -> Path:
    """Helm v3, for kustomize roots with ``helmCharts`` only (kustomize refuses v4)."""
    return _go_install("helm3", versions.HELM3, "helm.sh/helm/v3/cmd/helm", "helm", root=root, note="minutes cold")


def build_kube_score(*, root: Path | None = None) -> Path:
    """kube-score, for the benchmark's same-run comparison with a peer (never needed to run seatrial)."""
    return _go_install(
        "kube-score",
        versions.KUBE_SCORE,
        "github.com/zegl/kube-score/cmd/kube-score",
        "kube-score",
        root=root,
        note="about a minute cold",
    )


KUBE_LINTER_MODULE = "golang.stackrox.io/kube-linter"


def build_kube_linter(*, root: Path | None = None) -> Path:
    """kube-linter, for the benchmark's comparison. Its module calls itself golang.stackrox.io/…,
    a path the Go module proxy here refuses; the same tagged release is served under its GitHub
    path, so a wrapper module replaces the one with the other."""
    version = versions.KUBE_LINTER
    recipe = Recipe("kube-linter", version, "kube-linter", f"{KUBE_LINTER_MODULE}/cmd/kube-linter", "-s -w",
                    {"CGO_ENABLED": "0"})  # fmt: skip

    def go_mod(go: str, work: Path, log: Path, env: dict[str, str]) -> str:
        del go, work, log, env
        return (
            f"module seatrial.local/kubelinter\n\ngo {versions.GO_DIRECTIVE}\n\n"
            f"require {KUBE_LINTER_MODULE} {version}\n\n"
            f"replace {KUBE_LINTER_MODULE} => github.com/stackrox/kube-linter {version}\n"
        )

    return _build_wrapper("kube-linter", version, [recipe], go_mod=go_mod, root=root, note="about two minutes cold")[
        "kube-linter"
    ]


def build_coredns(*, root: Path | None = None) -> Path:
    return _go_install(
        "coredns", versions.COREDNS, "github.com/coredns/coredns", "coredns", root=root, note="a few minutes cold"
    )


GPU_PLUGIN_SOURCE = Path(__file__).with_name("gpuplugin") / "main.go"
GPU_PLUGIN = "seatrial-gpu-plugin"


def gpu_plugin_version() -> str:
    """The plugin is our own source: its cache key is the source's digest and the API it speaks."""
    digest = hashlib.sha256(GPU_PLUGIN_SOURCE.read_bytes()).hexdigest()[:12]
    return f"{versions.staging_version()}-{digest}"


def build_gpu_plugin(*, root: Path | None = None) -> Path:
    """The real GPU nodes' device plugin (seatrial/cluster/gpuplugin), against k8s.io/kubelet's v1beta1 API."""
    version = gpu_plugin_version()
    package = f"seatrial.local/gpuplugin/cmd/{GPU_PLUGIN}"
    recipe = Recipe("gpuplugin", version, GPU_PLUGIN, package, "-s -w", {"CGO_ENABLED": "0"})

    def go_mod(go: str, work: Path, log: Path, env: dict[str, str]) -> str:
        del go, log, env
        cmd = work / "cmd" / GPU_PLUGIN
        cmd.mkdir(parents=True, exist_ok=True)
        shutil.copy2(GPU_PLUGIN_SOURCE, cmd / "main.go")
        return (
            f"module seatrial.local/gpuplugin\n\ngo {versions.GO_DIRECTIVE}\n\n"
            f"require k8s.io/kubelet {versions.staging_version()}\n"
        )

    built = _build_wrapper("gpuplugin", version, [recipe], go_mod=go_mod, root=root, note="about a minute cold")
    return built[GPU_PLUGIN]


def ensure_binaries(*, root: Path | None = None, node_binaries: bool = False) -> Binaries:
    """Everything the control plane needs (and the node binaries when real nodes are wanted)."""
    kube = build_kubernetes(KUBE_BINARIES + (NODE_BINARIES if node_binaries else ()), root=root)
    paths = kube | {"etcd": etcd_or_fallback(root=root), "kwok": build_kwok(root=root)}
    if node_binaries:
        paths["coredns"] = build_coredns(root=root)
        paths[GPU_PLUGIN] = build_gpu_plugin(root=root)
    return Binaries(paths=paths)


def etcd_or_fallback(*, root: Path | None = None) -> Path:
    """Our pinned etcd, or, when it cannot be built, Debian's older etcd with a warning saying so."""
    try:
        return build_etcd(root=root)
    except BuildError as exc:
        system = shutil.which("etcd")
        if not system:
            raise
        say(
            f"WARNING: building etcd {versions.ETCD} failed, falling back to {system} "
            f"(Debian's etcd-server, 3.4.x: older than Kubernetes {versions.KUBERNETES} recommends). "
            f"Cause: {exc.message.splitlines()[0]}"
        )
        return Path(system)


def cached_binaries(*, root: Path | None = None) -> Binaries | None:
    """The binaries if all are already built, without building anything (for ``status``)."""
    root = root or cache_root()
    paths = {
        **{b: root / "bin" / f"kubernetes-{versions.KUBERNETES}" / b for b in KUBE_BINARIES + NODE_BINARIES},
        "coredns": root / "bin" / f"coredns-{versions.COREDNS}" / "coredns",
        "etcd": root / "bin" / f"etcd-{versions.ETCD}" / "etcd",
        "kwok": root / "bin" / f"kwok-{versions.KWOK}" / "kwok",
        GPU_PLUGIN: root / "bin" / f"gpuplugin-{gpu_plugin_version()}" / GPU_PLUGIN,
    }
    return (
        Binaries({k: p for k, p in paths.items() if p.exists()})
        if all(paths[k].exists() for k in (*KUBE_BINARIES, "etcd", "kwok"))
        else None
    )
