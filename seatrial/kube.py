"""Kubernetes access: one place that turns kubeconfigs into clients and API faults into our errors.

Nothing above this module sees a ``kubernetes`` exception: a bad kubeconfig is a
``ConfigError`` (exit 2), a cluster that does not answer is a ``ClusterError`` (exit 3).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from seatrial.errors import (
    AccessError,
    ClusterError,
    ConfigError,
    ConflictError,
    NotFoundError,
    TemporaryClusterError,
    yaml_problem,
)

T = TypeVar("T")

# The Pod Security Standards' restricted level, for the pods seatrial creates itself (GPU probes, locust):
# it asks this of every workload (PSS-002), so its own pods keep to it too.
RESTRICTED_POD: dict[str, Any] = {
    "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"},
}  # fmt: skip
RESTRICTED_CONTAINER: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class Target:
    """Which cluster to talk to: a kubeconfig path and, optionally, a context in it."""

    kubeconfig: Path
    context: str | None = None


def context_name(target: Target) -> str:
    """The context a target talks through (its own, or the kubeconfig's current one), read from
    the file alone: a guard on the name must act before anything is asked of the cluster."""
    if target.context:
        return target.context
    try:
        doc = yaml.safe_load(target.kubeconfig.read_text())
    except OSError as exc:
        raise ConfigError(f"kubeconfig {target.kubeconfig} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {target.kubeconfig} is malformed: {yaml_problem(exc)}") from None
    current = doc.get("current-context") if isinstance(doc, dict) else None
    return str(current or "")


class CountingApiClient(client.ApiClient):
    """An API client that counts its requests by verb and resource: a run's cost must not grow
    with the pods it reads (issue 17), and the count printed with the verdict shows it."""

    def __init__(self, cfg: client.Configuration) -> None:
        super().__init__(cfg)
        self.requests: Counter[str] = Counter()
        self._counting = threading.Lock()  # lists run in threads; a lost increment would fake a difference

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._counting:
            self.requests[request_kind(method, url)] += 1
        return super().call_api(method, url, *args, **kwargs)


def request_kind(method: str, url: str) -> str:
    """``list pods``, ``get nodes``, ``create pods/eviction``, ``watch pods``: what one request does."""
    parsed = urllib.parse.urlsplit(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parts[:1] not in (["api"], ["apis"]):
        return f"{method.lower()} /{'/'.join(parts)}"  # /version, /healthz
    # /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        rest = rest[2:]
    resource = rest[0] if rest else "?"
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
    if method == "DELETE":
        verb = "delete" if named else "deletecollection"
    if "watch=true" in parsed.query.lower():
        verb = "watch"
    return f"{verb or method.lower()} {resource}"


def request_summary(api: client.ApiClient) -> str:
    """``41 (list pods 6, get nodes 3, …)``, most frequent first; empty for a client that does not count."""
    if not isinstance(api, CountingApiClient) or not api.requests:
        return ""
    counts = api.requests
    top = ", ".join(f"{k} {n}" for k, n in counts.most_common())
    return f"{sum(counts.values())} ({top})"


def api_client(target: Target) -> client.ApiClient:
    if not target.kubeconfig.exists():
        raise ConfigError(f"kubeconfig not found: {target.kubeconfig}")
    try:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(target.kubeconfig), context=target.context, client_configuration=cfg
        )
    except ConfigException as exc:
        raise ConfigError(f"kubeconfig {target.kubeconfig} is not usable: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {target.kubeconfig} is malformed: {yaml_problem(exc)}") from None
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        raise ConfigError(f"kubeconfig {target.kubeconfig} is malformed: {exc}") from None
    cfg.retries = 0
    return CountingApiClient(cfg)


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Map client exceptions raised inside the block to seatrial errors that name ``action``."""
    try:
        yield
    except ApiException as exc:
        if exc.status in (500, 502, 503, 504, 429):
            raise TemporaryClusterError(f"{action}: the API server answered {exc.status} {exc.reason}") from None
        if exc.status == 401:
            raise AccessError(
                f"{action}: the cluster rejected the credentials (401 Unauthorized)",
                hint="they may have expired: renew them (aws eks update-kubeconfig, gcloud container clusters "
                "get-credentials, az aks get-credentials), or check the kubeconfig's user",
            ) from None
        if exc.status == 403:  # the server's message names the user, the verb and the resource
            raise AccessError(
                f"{action}: permission missing (403 {exc.reason}): {api_message(exc)}",
                hint="bind the user or ServiceAccount to seatrial's roles (docs/rbac.md), or ask the cluster's admin",
            ) from None
        error = {404: NotFoundError, 409: ConflictError}.get(int(exc.status or 0), ClusterError)
        raise error(f"{action}: {exc.status} {exc.reason}: {api_message(exc)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(
            f"{action}: the cluster is unreachable ({_why_unreachable(exc)})",
            hint="check the kubeconfig's server address, or start the local cluster: nox -s cluster -- up",
        ) from None


def _why_unreachable(exc: BaseException) -> str:
    """The innermost reason (connection refused, name not known, timed out) and the address,
    instead of urllib3's nested retry repr."""
    url = ""
    pool = getattr(exc, "pool", None)
    if pool is not None:
        url = f"{pool.scheme}://{pool.host}:{pool.port}"
    reason: BaseException = exc
    while isinstance(getattr(reason, "reason", None), BaseException):
        reason = reason.reason  # type: ignore[attr-defined]
    text = str(reason)
    text = text.split("]", 1)[1].strip() if text.startswith("[Errno") else text.rsplit(": ", 1)[-1]
    return f"{url}: {text}" if url else text


def api_message(exc: ApiException) -> str:
    import json

    if not exc.body:
        return str(exc.reason or "no message")
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (ValueError, AttributeError):
        return str(exc.body)


def server_version(api: client.ApiClient, *, timeout: float = 5.0) -> str:
    with translate("reading the server version"):
        info = client.VersionApi(api).get_code(_request_timeout=timeout)
    return str(info.git_version)


def wait_for(
    what: str,
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll until ``predicate`` returns something truthy; on timeout say what was awaited and why."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except TemporaryClusterError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else (str(last_error) if last_error else "")
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {detail}" if detail else ""))
        time.sleep(interval)


def wait_namespaces_gone(
    core: client.CoreV1Api, names: list[str], *, selector: str, timeout: float, what: str = ""
) -> None:
    """Wait until none of ``names`` is listed under the label ``selector``: a namespace being
    deleted still lists until its last object is gone, and a run that returns before then leaves
    the next run (or the user) a namespace that is not there and not gone. Listing by label needs
    only the list permission the read-only role grants, and one call covers many namespaces."""
    wanted = set(names)

    def gone() -> bool:
        with translate("listing namespaces"):
            listed = {name_of(n) for n in core.list_namespace(label_selector=selector).items}
        return not wanted & listed

    if wanted:
        wait_for(what or f"namespace {', '.join(sorted(wanted))} to be gone", gone, timeout=timeout, interval=0.5)


def name_of(obj: Any) -> str:
    """The object's name; the typed client models make metadata optional, the API never omits it."""
    return str(obj.metadata.name) if obj.metadata is not None else ""


def allocatable(node: Any) -> dict[str, str]:
    return dict(node.status.allocatable or {}) if node.status is not None else {}


def node_ready(node: Any) -> bool:
    for cond in (node.status.conditions or []) if node.status else []:
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


_SERIALIZER = client.ApiClient()


def list_items(lister: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """A list call's items as the API sent them (JSON), never built into typed models: the
    client's models cost about a millisecond a pod to build and as much again to turn back into
    a dict, which is most of a 10,000-pod inventory's time."""
    resp = lister(*args, _preload_content=False, **kwargs)
    try:
        body = json.loads(resp.data)
    except ValueError as exc:
        raise ClusterError(f"the API server sent a list that is not JSON: {exc}") from None
    items = body.get("items") if isinstance(body, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


def as_dict(obj: Any) -> dict[str, Any]:
    """An API object as the API sends it (camelCase keys, absent fields absent): the typed models
    make every field optional, which reads worse than ``.get`` with a default."""
    out = _SERIALIZER.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return out if isinstance(out, dict) else {}
