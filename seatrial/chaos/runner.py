"""One experiment, under load, into a ``report.Experiment``.

The order is the point: open the run's ledger (blast radius and undo), start locust and wait
until requests flow, let Chaos Toolkit run the file (steady state, method, steady state,
rollbacks — strategy ``always``), unwind the ledger whatever happened, keep the load running a
few seconds more so recovery is on the record, then stop it. The verdict is computed from the
per-request log by ``report.Experiment``; this module only translates the journal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client

from seatrial import kube, load, report, workloads
from seatrial.chaos import ledger
from seatrial.chaos.loadgen import Locust
from seatrial.chaos.target import LoadTarget, load_target
from seatrial.errors import ConfigError, SeatrialError, reject_unknown
from seatrial.profile import Profile, Slos
from seatrial.report.redact import redact

if TYPE_CHECKING:
    from seatrial.cluster.local import LocalCluster

SETTINGS = {"runtime": {"rollbacks": {"strategy": "always"}}}
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def load_file(path: Path) -> dict[str, Any]:
    """The experiment, validated by Chaos Toolkit itself; a bad file is a ConfigError (exit 2)."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    if not path.is_file():
        raise ConfigError(f"experiment {path} does not exist")
    try:
        exp: dict[str, Any] = load_experiment(str(path))
        ensure_experiment_is_valid(exp)
    except ChaosException as exc:
        raise ConfigError(f"experiment {path} is not valid: {exc}") from None
    experiment_slos(exp, Slos())  # a bad seatrial extension fails here, before anything acts
    return exp


@dataclass(frozen=True)
class Where:
    """The stack an experiment acts on and how to reach it."""

    api: client.ApiClient
    target: kube.Target
    namespace: str
    profile: Profile
    local: LocalCluster | None = None  # the local cluster, which gets its images from here
    allow_node_chaos: bool = False  # --allow-node-chaos: node chaos on a cluster seatrial did not start

    def node_scope(self) -> ledger.NodeScope | None:
        """Node chaos is on for seatrial's own local cluster, elsewhere only when allowed."""
        if self.local is None and not self.allow_node_chaos:
            return None
        return ledger.NodeScope(dict(self.profile.chaos.node_selector))

    def locust_image(self) -> str:
        """The distributed load's image: the profile's, else on the local cluster one built here
        and imported into its nodes, else locust's own image of the version this process runs."""
        if self.profile.load.image:
            return self.profile.load.image
        if self.local is not None:
            from seatrial.cluster import images

            img = images.locust_image()
            self.local.ensure_images([img])
            return img.ref
        from importlib.metadata import version

        return f"docker.io/locustio/locust:{version('locust')}"

    def configuration(self) -> dict[str, Any]:
        ld = self.profile.load
        return {
            "namespace": self.namespace,
            "kubeconfig": str(self.target.kubeconfig),
            "kube_context": self.target.context or "",
            "service": ld.service,
            "port": ld.port,
            "path": ld.path,
            "auth_secret": ld.auth_secret or "",
            "provider": self.profile.chaos.provider,
            "local_state": str(self.local.state) if self.local is not None else "",
        }


def run(path: Path, where: Where, workdir: Path, *, tail: float = 2.0) -> report.Experiment:
    """Run ``path`` against ``where`` under the profile's load; artefacts go to ``workdir``."""
    from chaoslib.experiment import run_experiment

    exp = load_file(path)
    workloads.wait_whole(where.api, where.namespace, timeout=180)  # start from a whole stack
    target = load_target(where.api, where.namespace, where.profile.load)
    book = ledger.begin({where.namespace, *where.profile.namespaces}, nodes=where.node_scope())
    quiet = logging.getLogger("chaostoolkit")
    quiet.setLevel(logging.WARNING)
    prompts = int(extension(exp).get("load", {}).get("prompts", 200))
    slos = experiment_slos(exp, where.profile.slos)
    config = where.configuration() | {"recovery_seconds": slos.recovery_seconds}
    with _load(where, target, workdir / "requests.csv", prompts) as lg:
        lg.wait_for_requests()
        _until_serving(config)
        try:
            journal: dict[str, Any] = run_experiment(exp, settings=SETTINGS, experiment_vars=(config, {}))
        finally:
            book.unwind()
        time.sleep(tail)
    (workdir / "journal.json").write_text(json.dumps(journal, indent=2, default=str))
    result = experiment(
        path.stem,
        journal,
        load_started=lg.started,
        samples=lg.samples(),
        profile=where.profile,
        undo_failures=book.failures,
    )
    result.attachments += [
        report.Attachment("journal", (workdir / "journal.json").read_text(), "application/json"),
        *(
            report.Attachment(f"locust {p.stem}", p.read_text(), "text/csv")
            for p in sorted(workdir.glob("requests-locust_stats.csv"))
        ),
    ]
    if result.status != "passed":  # what the services said while it went wrong, beside the verdict
        logs = stack_logs(where.api, where.namespace, since=lg.started)
        result.attachments += logs
        (workdir / "logs").mkdir(exist_ok=True)
        for a in logs:
            (workdir / "logs" / a.filename).write_text(redact(str(a.body)))
    stop = stop_asked(journal)
    if stop is not None:
        raise stop  # undone above; now let the caller stop as the signal asked
    return result


def stack_logs(api: client.ApiClient, namespace: str, *, since: float, lines: int = 300) -> list[report.Attachment]:
    """What each container of the stack logged from ``since`` (a wall-clock time) on, for a
    verdict that did not pass: a failure seen once in forty runs is understood from what the
    services said when it happened, or not at all (rolling-restart's three requests that timed
    out together left nothing else). Read side by side, each read given 5 s: a node that does
    not serve logs (a simulated one) costs its pods' logs, not the run."""
    from concurrent.futures import ThreadPoolExecutor

    core = client.CoreV1Api(api)
    seconds = max(1, int(time.time() - since) + 1)
    try:
        with kube.translate(f"listing the pods of {namespace}"):
            listed = kube.list_items(core.list_namespaced_pod, namespace)
    except SeatrialError:
        return []
    pods = [(p["metadata"]["name"], c["name"]) for p in listed for c in (p.get("spec") or {}).get("containers") or []]

    def read(pod: str, container: str) -> report.Attachment | None:
        try:
            text = core.read_namespaced_pod_log(
                pod, namespace, container=container, since_seconds=seconds, tail_lines=lines, timestamps=True,
                _request_timeout=5,
            )  # fmt: skip
        except Exception:  # evidence is best effort: a log that cannot be read is left out
            return None
        return report.Attachment(f"log {pod} {container}", text) if text else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda pc: read(*pc), pods))
    return [a for a in found if a is not None]


def stop_asked(journal: dict[str, Any]) -> BaseException | None:
    """What a signal during the experiment asks of the caller. Chaos Toolkit turns SIGINT into an
    "interrupted" run, but SIGTERM (a CI timeout, ``kill``) into an activity that failed with
    InterruptExecution, so the run merely "failed" and a suite went on to its next experiment:
    the bench's ``repeat`` ran five more after one."""
    if journal.get("status") == "interrupted":
        return KeyboardInterrupt()
    if "InterruptExecution: SIGTERM signal received" in json.dumps(journal, default=str):
        return SystemExit(128 + 15)
    return None


def _until_serving(config: dict[str, Any], *, timeout: float = 45.0) -> None:
    """Start the experiment on a stack that serves: uncached requests through the front door,
    two seconds without a failure. Pods Ready is not enough; a replica replaced by the previous
    experiment leaves a stale registration, and a gateway that meets it first answers 503 for a
    second or two (seen as 19 % errors in a steady-state probe before any fault). The wait is
    bounded; a stack that never steadies is judged by the experiment's own hypothesis."""
    from seatrial.chaos import actions

    deadline = time.monotonic() + timeout
    while actions.error_rate(2.0, min_requests=0, configuration=config) > 0 and time.monotonic() < deadline:
        time.sleep(1.0)


def _load(where: Where, target: LoadTarget, log: Path, prompts: int) -> Locust:
    """Locust here, or a master and ``load.workers`` workers in the cluster."""
    ld = where.profile.load
    rate = ld.spawn_rate or None
    if ld.workers <= 0:
        return Locust(target, users=ld.users, log=log, spawn_rate=rate, prompts=prompts)
    from seatrial.chaos.distributed import ClusterLocust

    return ClusterLocust(
        target,
        users=ld.users,
        log=log,
        api=where.api,
        namespace=where.namespace,
        workers=ld.workers,
        image=where.locust_image(),
        auth_secret=ld.auth_secret,
        spawn_rate=rate,
        prompts=prompts,
    )


def _when(stamp: object) -> dt.datetime:
    if isinstance(stamp, str) and stamp:
        parsed = dt.datetime.fromisoformat(stamp)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def _step(phase: str, run: Mapping[str, Any], *, probe: bool) -> report.Step:
    act = run.get("activity") or {}
    if run.get("status") != "succeeded":
        status = "error"
    elif probe and run.get("tolerance_met") is False:
        status = "failed"
    else:
        status = "passed"
    exc = run.get("exception")
    out = exc or run.get("output")
    if isinstance(exc, list) and exc and all(isinstance(x, str) for x in exc):
        # a traceback: its last line says what went wrong, and is what a report has room for
        lines = [ln for ln in "".join(exc).splitlines() if ln.strip()]
        start = max(
            (i for i, ln in enumerate(lines) if not ln[0].isspace() and ": " in ln and not ln.startswith("hint:")),
            default=len(lines) - 1,
        )
        text = " ".join(ln.strip() for ln in lines[start:])
    elif isinstance(out, list) and all(isinstance(x, str) for x in out):
        text = "".join(out)
    else:
        text = json.dumps(out, default=str)
    tolerance = act.get("tolerance")
    if status == "failed" and isinstance(tolerance, Mapping) and tolerance.get("type") == "range":
        low, high = tolerance.get("range") or ("?", "?")
        text += f" (tolerated: {low} to {high})"  # "1.0" alone does not say how far off it was
    return report.Step(
        phase, str(act.get("name", "?")), status, _when(run.get("start")), _when(run.get("end")), text[:500]
    )


def steps(journal: Mapping[str, Any], undo_failures: Iterable[str] = ()) -> list[report.Step]:
    """The journal's activities as report steps, in the order they ran."""
    out: list[report.Step] = []
    states = journal.get("steady_states") or {}
    for phase, key in (("steady-state-before", "before"), ("method", None), ("steady-state-after", "after")):
        runs = journal.get("run") or [] if key is None else (states.get(key) or {}).get("probes") or []
        out += [_step(phase, r, probe=key is not None) for r in runs]
    out += [_step("rollback", r, probe=False) for r in journal.get("rollbacks") or []]
    now = dt.datetime.now(dt.UTC)
    out += [report.Step("rollback", "seatrial undo", "error", now, now, msg) for msg in undo_failures]
    return out


SLO_FIELDS = {"errorRate": "error_rate", "p99Ms": "p99_ms", "recoverySeconds": "recovery_seconds"}


EXTENSION_FIELDS = {"name", "slos", "load", "faultUntil", "needsHost"}
FAULT_UNTIL = ("method", "rollbacks")
LOAD_FIELDS = {"prompts"}


def extension(exp: Mapping[str, Any]) -> dict[str, Any]:
    """The file's ``seatrial`` extension (Chaos Toolkit's place for a tool's own settings):
    ``slos`` to tighten the profile's for this experiment, ``load.prompts`` for how many distinct
    prompts locust sends (the cache's hit ratio), ``faultUntil: rollbacks`` for a fault that lasts
    through the steady state after it until a rollback gives back what it took (the window the
    timeline shades and the bench measures), ``needsHost`` saying what the experiment does on the
    machine under the nodes (it runs only on seatrial's local cluster). Unknown fields are errors,
    before anything acts."""
    for ext in exp.get("extensions") or []:
        if isinstance(ext, Mapping) and ext.get("name") == "seatrial":
            where = f"experiment {exp.get('title')}: seatrial extension"
            reject_unknown(ext, EXTENSION_FIELDS, where)
            reject_unknown(ext.get("slos") or {}, set(SLO_FIELDS), f"{where} slos")
            reject_unknown(ext.get("load") or {}, LOAD_FIELDS, f"{where} load")
            if ext.get("faultUntil", "method") not in FAULT_UNTIL:
                raise ConfigError(f"{where}: faultUntil must be one of {', '.join(FAULT_UNTIL)}")
            if "needsHost" in ext and not (isinstance(ext["needsHost"], str) and ext["needsHost"].strip()):
                raise ConfigError(f"{where}: needsHost must say what the experiment does on the host")
            return dict(ext)
    return {}


def needs_host(exp: Mapping[str, Any], where: Where) -> str | None:
    """Why the experiment cannot run against ``where``, when it acts on the machine under the
    nodes (switches real nodes off, fails a GPU in its device plugin) and that machine is not
    seatrial's: on a cluster seatrial did not start, no API call can do that."""
    why = extension(exp).get("needsHost")
    if not why or where.local is not None:
        return None
    return f"it {why}: that needs the machine under the nodes, which only seatrial's local cluster has"


def experiment_slos(exp: Mapping[str, Any], slos: Slos) -> Slos:
    """The profile's SLOs, tightened where the file's extension says so (a rolling restart's
    budget is zero failed requests, whatever the profile allows a pod kill)."""
    given = extension(exp).get("slos") or {}
    return dataclasses.replace(slos, **{SLO_FIELDS[k]: float(v) for k, v in given.items()})


def experiment(
    name: str,
    journal: Mapping[str, Any],
    *,
    load_started: float,
    samples: list[load.Sample],
    profile: Profile,
    undo_failures: Iterable[str] = (),
) -> report.Experiment:
    """Journal + request log -> the experiment a report judges. The fault window runs from the
    first method action's start to the last one's end (or the last rollback action's end, when
    the file says the fault lasts until then), on the load's clock."""
    exp = journal.get("experiment") or {}
    slos = experiment_slos(exp, profile.slos)
    result = report.Experiment(name, str(exp.get("title", name)), slos, steps(journal, undo_failures), samples)
    until_rollbacks = extension(exp).get("faultUntil") == "rollbacks"
    ran = [*(journal.get("run") or []), *((journal.get("rollbacks") or []) if until_rollbacks else [])]
    actions = [r for r in ran if (r.get("activity") or {}).get("type") == "action"]
    clock = [
        (_when(r.get("start")).timestamp() - load_started, _when(r.get("end")).timestamp() - load_started)
        for r in actions
    ]
    if clock:
        result.fault = (min(a for a, _ in clock), max(b for _, b in clock))
    for r in [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]:
        act = r.get("activity") or {}
        if act.get("type") == "action":
            result.events.append(load.Event(_when(r.get("start")).timestamp() - load_started, str(act.get("name"))))
    return result
