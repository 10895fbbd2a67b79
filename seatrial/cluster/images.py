"""Container images for real nodes, built here because no registry can be reached.

Two images are enough for the nodes themselves: a pause image (Debian's static ``catatonit`` in
pause mode) and a Python base (a ``debootstrap --variant=minbase`` Debian root with python3) that
the reference stack's services run on. Each is an OCI archive in the cache, named with a full
reference (``seatrial.local/...``) so containerd keeps the name on import, and rebuilt only when
its recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seatrial.cluster import build, versions
from seatrial.cluster.supervisor import DAEMON_UMASK
from seatrial.errors import BuildError, ToolMissingError

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    ref: str
    archive: Path


PAUSE = "seatrial.local/pause:3.10"
COREDNS = f"seatrial.local/coredns:{versions.COREDNS.lstrip('v')}"
PYTHON = "seatrial.local/python:3.11-bookworm"
# redis-server rides along: the reference stack's cache runs on this base on the local cluster
PYTHON_PACKAGES = ("python3", "ca-certificates", "procps", "redis-server")
ETCD = f"seatrial.local/etcd:{versions.ETCD}"
STACK_VERSION = "0.1.0"
STACK = f"seatrial.local/stack:{STACK_VERSION}"


def images_dir(root: Path | None = None) -> Path:
    return (root or build.cache_root()) / "images"


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ToolMissingError(
            f"building node images needs {', '.join(missing)}",
            hint="apt-get install umoci catatonit debootstrap",
        )


def _run(cmd: list[str], *, log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise BuildError(f"image build step failed: {' '.join(cmd[:3])} …; log: {log}\n{tail}")


def _pack(rootfs: Path, *, ref: str, config: list[str], work: Path, out: Path, log: Path) -> None:
    """Turn a root filesystem into a one-layer OCI archive named ``ref``."""
    layout = work / "oci"
    bundle = work / "bundle"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.rmtree(bundle, ignore_errors=True)
    _run(["umoci", "init", "--layout", str(layout)], log=log)
    _run(["umoci", "new", "--image", f"{layout}:build"], log=log)
    _run(["umoci", "unpack", "--image", f"{layout}:build", str(bundle)], log=log)
    _run(["cp", "-a", f"{rootfs}/.", str(bundle / "rootfs")], log=log)
    _run(["umoci", "repack", "--image", f"{layout}:build", str(bundle)], log=log)
    _run(["umoci", "config", "--image", f"{layout}:build", *config], log=log)
    _run(["umoci", "tag", "--image", f"{layout}:build", ref], log=log)
    _run(["umoci", "rm", "--image", f"{layout}:build"], log=log)
    tmp = out.with_suffix(".tar.new")
    _run(["tar", "-C", str(layout), "-cf", str(tmp), "oci-layout", "index.json", "blobs"], log=log)
    tmp.replace(out)
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.rmtree(layout, ignore_errors=True)


def _cached(out: Path, recipe: str) -> bool:
    stamp = out.with_suffix(".recipe")
    return out.exists() and stamp.exists() and stamp.read_text() == recipe


def _stamp(out: Path, recipe: str) -> None:
    out.with_suffix(".recipe").write_text(recipe)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _image(
    name: str,
    ref: str,
    recipe: str,
    *,
    tools: tuple[str, ...],
    populate: Callable[[Path, Path], None],
    config: list[str],
    root: Path | None,
) -> Image:
    """Build (or reuse) one image: ``populate(rootfs, log)`` fills a fresh root, then it is packed."""
    d = images_dir(root)
    out = d / f"{name}.tar"
    if _cached(out, recipe):
        return Image(ref, out)
    _need("umoci", *tools)
    d.mkdir(parents=True, exist_ok=True)
    log = d / f"{name}.log"
    log.write_text("")
    work = d / f"work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    populate(work / "rootfs", log)
    _pack(work / "rootfs", ref=ref, config=config, work=work, out=out, log=log)
    shutil.rmtree(work, ignore_errors=True)
    _stamp(out, recipe)
    build.record_timing(d.parent, f"image {ref}", time.monotonic() - started)
    build.say(f"built image {ref} in {time.monotonic() - started:.0f}s")
    return Image(ref, out)


OPEN_TO_ALL = 2  # in the recipes of the images open_to_all made: one built before, under umask 077, is not reused


def open_to_all(top: Path) -> None:
    """Make what an image adds readable (and, where its owner may run it, runnable) by every user,
    as a package's files are: the stack, etcd and locust run as users other than root, and files
    copied from a checkout or a build keep the modes the user's umask gave them (077 or 027 on
    hardened hosts: 0600 code and a 0700 etcd binary that user 65532 can neither read nor run)."""
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o7777
        if path.is_dir():
            path.chmod(mode | 0o755)
        else:
            path.chmod(mode | 0o444 | (0o111 if mode & 0o100 else 0))


def _copy_in(*files: Path) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, log: Path) -> None:
        del log
        rootfs.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, rootfs / f.name)
        open_to_all(rootfs)  # a fresh root: nothing in it but these

    return populate


def pause_image(root: Path | None = None) -> Image:
    catatonit = Path(shutil.which("catatonit") or "/usr/bin/catatonit")
    return _image(
        "pause",
        PAUSE,
        _digest(PAUSE, "catatonit -P", OPEN_TO_ALL),
        tools=("catatonit",),
        populate=_copy_in(catatonit),
        config=["--config.entrypoint", "/catatonit", "--config.entrypoint", "-P"],
        root=root,
    )


def _debootstrap(rootfs: Path, log: Path) -> None:
    build.say(f"building image {PYTHON}: debootstrap {DEBIAN_SUITE} minbase + python3 (about 1-2 minutes cold)")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PYTHON_PACKAGES)}",
            DEBIAN_SUITE,
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        log=log,
    )
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    for dev in (rootfs / "dev").iterdir():  # runc mounts /dev; device nodes do not belong in a layer
        if dev.is_dir() and not dev.is_symlink():
            shutil.rmtree(dev)
        else:
            dev.unlink()


def python_image(root: Path | None = None) -> Image:
    config = [
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.env",
        "PYTHONUNBUFFERED=1",
        "--config.cmd",
        "python3",
        "--config.workingdir",
        "/",
    ]
    return _image(
        "python",
        PYTHON,
        _digest(PYTHON, DEBIAN_SUITE, PYTHON_PACKAGES, 1),
        tools=("debootstrap",),
        populate=_debootstrap,
        config=config,
        root=root,
    )


def binary_image(ref: str, binary: Path, root: Path | None = None) -> Image:
    """A scratch image holding one static binary as its entrypoint."""
    name = ref.rsplit("/", 1)[-1].split(":", maxsplit=1)[0]
    recipe = _digest(ref, binary.stat().st_size, binary.stat().st_mtime_ns, OPEN_TO_ALL)
    return _image(
        name,
        ref,
        recipe,
        tools=(),
        populate=_copy_in(binary),
        config=["--config.entrypoint", f"/{binary.name}"],
        root=root,
    )


def _copy_to(dest: str, binary: Path) -> Callable[[Path, Path], None]:
    def populate(rootfs: Path, log: Path) -> None:
        del log
        (rootfs / dest).mkdir(parents=True)
        shutil.copy2(binary, rootfs / dest / binary.name)
        open_to_all(rootfs)  # a fresh root: nothing in it but this

    return populate


def etcd_image(binary: Path, root: Path | None = None) -> Image:
    """etcd where the upstream image keeps it (/usr/local/bin), so one manifest fits both."""
    return _image(
        "etcd",
        ETCD,
        _digest(ETCD, binary.stat().st_size, binary.stat().st_mtime_ns, OPEN_TO_ALL),
        tools=(),
        populate=_copy_to("usr/local/bin", binary),
        config=["--config.entrypoint", "/usr/local/bin/etcd"],
        root=root,
    )


def _tree_digest(src: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(src.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _layer(
    name: str, ref: str, recipe: str, add: Callable[[Path, Path], None], *, config: list[str], root: Path | None
) -> Image:
    """One layer on top of the Python base: ``add(rootfs, log)`` puts files in, ``config`` sets
    the environment. A change rebuilds (and re-imports) only this layer, not the base."""
    base = python_image(root)
    d = images_dir(root)
    out = d / f"{name}.tar"
    recipe = _digest(ref, recipe, base.archive.with_suffix(".recipe").read_text(), OPEN_TO_ALL)
    if _cached(out, recipe):
        return Image(ref, out)
    _need("umoci")
    log = d / f"{name}.log"
    log.write_text("")
    work = d / f"work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "oci").mkdir(parents=True)
    started = time.monotonic()
    layout, bundle = work / "oci", work / "bundle"
    _run(["tar", "-C", str(layout), "-xf", str(base.archive)], log=log)
    _run(["umoci", "unpack", "--image", f"{layout}:{PYTHON}", str(bundle)], log=log)
    add(bundle / "rootfs", log)
    _run(["umoci", "repack", "--image", f"{layout}:{PYTHON}", str(bundle)], log=log)
    _run(["umoci", "config", "--image", f"{layout}:{PYTHON}", *config], log=log)
    _run(["umoci", "tag", "--image", f"{layout}:{PYTHON}", ref], log=log)
    _run(["umoci", "rm", "--image", f"{layout}:{PYTHON}"], log=log)
    tmp = out.with_suffix(".tar.new")
    _run(["tar", "-C", str(layout), "-cf", str(tmp), "oci-layout", "index.json", "blobs"], log=log)
    tmp.replace(out)
    shutil.rmtree(work, ignore_errors=True)
    _stamp(out, recipe)
    build.record_timing(d.parent, f"image {ref}", time.monotonic() - started)
    build.say(f"built image {ref} in {time.monotonic() - started:.0f}s")
    return Image(ref, out)


def stack_image(apps: Path, root: Path | None = None) -> Image:
    """The reference stack's services: ``apps/stack`` on the Python base."""

    def add(rootfs: Path, log: Path) -> None:
        del log
        shutil.copytree(apps / "stack", rootfs / "app" / "stack", ignore=shutil.ignore_patterns("__pycache__"))
        open_to_all(rootfs / "app")

    config = ["--config.env", "PYTHONPATH=/app", "--config.workingdir", "/app"]
    return _layer("stack", STACK, _tree_digest(apps / "stack"), add, config=config, root=root)


LOCUST_DIR = "/opt/locust"


# pip takes a --platform as that tag alone: wheels of locust's dependencies tagged for older
# glibcs (manylinux_2_17, manylinux2014) need naming, or it finds no resolution
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def wheel_installer() -> list[str]:
    """The start of a command that installs Linux wheels for another Python into a folder: uv on
    PATH, else the uv of this Python's environment (``pip install uv``, or nox's own), else pip.
    A venv nox made with uv has neither pip nor uv in it, and uv may live only beside nox, so
    each is looked for before saying what to install."""
    import importlib.util

    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python-platform", "x86_64-manylinux_2_28"]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv", "pip", "install", "--python-platform", "x86_64-manylinux_2_28"]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install", *(a for p in PIP_PLATFORMS for a in ("--platform", p))]
    raise ToolMissingError(
        "the locust image for the distributed load is installed from PyPI with uv or pip, and this "
        f"Python ({sys.executable}) has neither: put uv on PATH (pip install uv) and run again"
    )


def locust_image(root: Path | None = None) -> Image:
    """Locust, the version this process runs, for the distributed load's master and workers:
    manylinux wheels for the base's CPython 3.11 installed into ``/opt/locust`` (PyPI is the one
    place it can come from here). The locustfile is not in it: a ConfigMap brings that, so a
    change to the load needs no image."""
    from importlib.metadata import version

    wanted = version("locust")

    def add(rootfs: Path, log: Path) -> None:
        target = rootfs / LOCUST_DIR.lstrip("/")
        cmd = [*wheel_installer(), "--quiet", "--target", str(target), "--python-version", "3.11",
               "--only-binary", ":all:", f"locust=={wanted}"]  # fmt: skip
        build.say(f"building image seatrial.local/locust:{wanted}: locust and its wheels from PyPI")
        _run(cmd, log=log)
        open_to_all(target)

    config = ["--config.env", f"PYTHONPATH={LOCUST_DIR}", "--config.env", "PYTHONDONTWRITEBYTECODE=1",
              "--config.workingdir", "/tmp"]  # fmt: skip
    return _layer("locust", f"seatrial.local/locust:{wanted}", wanted, add, config=config, root=root)


def node_images(bins: dict[str, Path], root: Path | None = None, apps: Path | None = None) -> list[Image]:
    """Every image each real node holds from the start (the pause image first)."""
    out = [pause_image(root), python_image(root), binary_image(COREDNS, bins["coredns"], root)]
    if "etcd" in bins:
        out.append(etcd_image(bins["etcd"], root))
    if apps is not None and (apps / "stack").is_dir():
        out.append(stack_image(apps, root))
    return out


def manifest_digest(archive: Path) -> str:
    """The digest containerd lists for an imported archive: its index's first manifest."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise BuildError(f"{archive} has no index.json")
        return str(json.load(member)["manifests"][0]["digest"])


UNUSED_PLUGINS = (  # containerd plugins neither a node nor the image store needs
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)
STORE_PLUGINS_OFF = ("io.containerd.grpc.v1.cri", *UNUSED_PLUGINS)  # the store serves no kubelet


def _containerd_version() -> str:
    proc = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def image_store(imgs: list[Image], root: Path | None = None) -> Path:
    """A containerd root with every node image imported and unpacked, built once per image set.

    Why: four containerds importing (and unpacking) the Python image at the same time took 15-25 s
    of every warm bring-up on two cores. Each node now starts from a hard-linked copy of this store
    (``plant_store``), which takes well under a second. Content blobs and committed overlay layers
    are never written in place, so sharing their inodes between nodes is safe."""
    d = images_dir(root)
    key = _digest(
        _containerd_version(),
        2,  # 2: unpacked under the daemons' umask (a store unpacked under 077 has 0700 container roots)
        [(i.ref, i.archive.stat().st_size, i.archive.stat().st_mtime_ns) for i in imgs],
    )
    store = d / f"store-{key}"
    if (store / "complete").exists():
        return store
    _need("containerd", "ctr")
    with build.lock(d.parent / "locks" / "image-store.lock"):
        if (store / "complete").exists():
            return store
        started = time.monotonic()
        build.say(f"unpacking {len(imgs)} node images into a containerd store (once per image set)")
        for old in d.glob("store-*"):
            if not _store_in_use(old):
                shutil.rmtree(old, ignore_errors=True)
        store.mkdir(parents=True)
        log = d / "store.log"
        log.write_text("")
        runtime = Path("/run") / f"seatrial-store-{key}"
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True)
        sock = runtime / "containerd.sock"
        config = runtime / "config.toml"
        off = ", ".join(f'"{p}"' for p in STORE_PLUGINS_OFF)
        config.write_text(
            f'version = 2\nroot = "{store}"\nstate = "{runtime / "state"}"\ndisabled_plugins = [{off}]\n'
            f'[grpc]\n  address = "{sock}"\n'
        )
        with log.open("a") as fh:
            daemon = subprocess.Popen(
                ["containerd", f"--config={config}"], stdout=fh, stderr=subprocess.STDOUT, umask=DAEMON_UMASK
            )
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise BuildError(f"containerd for the node image store did not start; log: {log}")
                time.sleep(0.1)
            for img in imgs:
                _run(["ctr", f"--address={sock}", "-n", "k8s.io", "images", "import", str(img.archive)], log=log)
        except BaseException:
            shutil.rmtree(store, ignore_errors=True)
            raise
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            shutil.rmtree(runtime, ignore_errors=True)
        (store / "complete").write_text(json.dumps([i.ref for i in imgs]))
        build.record_timing(d.parent, "node image store", time.monotonic() - started)
        build.say(f"node image store ready in {time.monotonic() - started:.0f}s")
    return store


SNAPSHOTS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"


def plant_store(store: Path, dest: Path) -> None:
    """Give a node its own containerd root that already holds every image.

    The unpacked layers (thousands of files) are symlinked: overlayfs only ever reads a committed
    layer, and a hard-linked copy of them cost a second per node. Content blobs are hard links and
    the bolt databases real copies, because containerd rewrites those in place."""
    shutil.rmtree(dest, ignore_errors=True)
    for here, dirs, files in os.walk(store):
        rel = Path(here).relative_to(store)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        if rel == SNAPSHOTS:
            for d in dirs:
                (dest / rel / d).symlink_to(Path(here) / d, target_is_directory=True)
            dirs.clear()
        for f in files:
            if f == "complete":
                continue
            if f.endswith(".db"):
                shutil.copy2(Path(here) / f, dest / rel / f)
            else:
                os.link(Path(here) / f, dest / rel / f)
    (store / "complete").touch()  # last planted: pruning keeps stores a running node may still use


def _store_in_use(store: Path) -> bool:
    """A store is in use while any overlay mount (a running container) reads a layer from it."""
    real = store.resolve()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "overlay":
            continue
        for opt in fields[3].split(","):
            if opt.startswith("lowerdir="):
                for lower in opt.removeprefix("lowerdir=").split(":"):
                    if Path(lower).resolve().is_relative_to(real):
                        return True
    return False
