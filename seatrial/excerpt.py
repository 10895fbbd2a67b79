"""What of an object a report may show: default-deny.

An excerpt sits beside a finding so a person can see the object without opening the cluster.
Scrubbing what *looks* secret failed: a key in ``args: [--api-key, VALUE]``, a password in a probe
command, a token in an annotation, a credential in a URL all went out in plain text. So the rule is
reversed: every string is ``<redacted>`` unless the field it sits in is known to hold no secret
(names, images, ports, quantities, probe paths, label keys and values, scheduling terms, RBAC
rules). Numbers and booleans stay, except where values are free text (env values, args, commands).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# fields whose string values name or place things, never carry a credential
# fmt: off
SAFE_STRINGS = frozenset(
    {
        # identity and references
        "apiVersion", "kind", "name", "namespace", "generateName", "apiGroup", "claimName", "secretName",
        "serviceAccountName", "serviceAccount", "serviceName", "priorityClassName", "schedulerName",
        "storageClassName", "runtimeClassName", "ingressClassName", "nodeName", "hostname", "subdomain",
        "containerName", "fieldPath", "resource", "divisor",
        # images and how pods run
        "image", "imagePullPolicy", "restartPolicy", "dnsPolicy", "preemptionPolicy", "podManagementPolicy",
        "concurrencyPolicy", "completionMode", "schedule", "terminationMessagePolicy", "terminationMessagePath",
        "fsGroupChangePolicy", "volumeMode", "accessModes", "mountPath", "subPath", "readOnly", "medium",
        "sizeLimit", "mountPropagation", "add", "drop", "procMount",
        # ports, probes, services
        "port", "targetPort", "containerPort", "nodePort", "hostPort", "protocol", "appProtocol", "path",
        "pathType", "scheme", "type", "clusterIP", "externalTrafficPolicy", "internalTrafficPolicy",
        "sessionAffinity", "policyTypes",
        # scheduling, spread, disruption, rollouts
        "key", "operator", "effect", "topologyKey", "whenUnsatisfiable", "nodeAffinityPolicy",
        "nodeTaintsPolicy", "values", "maxSurge", "maxUnavailable", "minAvailable",
        "unhealthyPodEvictionPolicy", "partition",
        # RBAC
        "verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs",
        # HPA
        "averageValue",
    }
)
# fmt: on
# subtrees whose keys and values are all names or quantities
OPEN_SUBTREES = frozenset({"labels", "matchLabels", "nodeSelector", "selector", "requests", "limits", "hard"})
# fields whose values are free text even when they are numbers
FREE_TEXT = frozenset({"value", "args", "command", "data", "stringData", "binaryData"})
# a field that is safe only below some ancestor: a toleration's value is a taint's value
SAFE_BELOW = {"value": "tolerations"}


def scrub(node: Any, key: str = "", above: frozenset[str] = frozenset()) -> Any:
    """``node`` with every value the allow-lists above do not vouch for replaced by ``<redacted>``.

    ``key`` is the field the node sits in (list items inherit their list's field), ``above`` the
    fields on the way down from the object's root."""
    if isinstance(node, Mapping):
        if key in OPEN_SUBTREES and all(not isinstance(v, (Mapping, list)) for v in node.values()):
            return {str(k): v for k, v in node.items()}
        inner = above | {key}
        return {str(k): scrub(v, str(k), inner) for k, v in node.items()}
    if isinstance(node, list):
        return [scrub(v, key, above) for v in node]
    shown = (
        node is None
        or isinstance(node, bool)
        or (isinstance(node, (int, float)) and key not in FREE_TEXT)
        or key in SAFE_STRINGS
        or SAFE_BELOW.get(key) in above
    )
    return node if shown else REDACTED


def excerpt(obj: Mapping[str, Any]) -> str:
    """The object as a person wants it beside a finding: identity, labels, annotation *keys* and
    the spec, scrubbed default-deny; a Secret's or ConfigMap's keys and sizes, never their data."""
    meta = obj.get("metadata") or {}
    annotations = {str(k): REDACTED for k in (meta.get("annotations") or {}) if k != LAST_APPLIED}
    out: dict[str, Any] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            k: v
            for k, v in (
                ("name", meta.get("name")),
                ("namespace", meta.get("namespace")),
                ("labels", scrub(meta.get("labels"), "labels")),
                ("annotations", annotations),
            )
            if v
        },
    }
    if obj.get("kind") in ("Secret", "ConfigMap"):
        data = {**(obj.get("data") or {}), **(obj.get("stringData") or {}), **(obj.get("binaryData") or {})}
        out["data"] = {str(k): _size(v) for k, v in sorted(data.items(), key=lambda kv: str(kv[0]))}
    for key in ("spec", "roleRef", "subjects", "rules"):
        if key in obj:
            out[key] = scrub(obj[key], key)
    text: str = yaml.safe_dump(out, sort_keys=False, width=110)
    return text


def _size(value: object) -> str:
    text = str(value)
    lines = len(text.splitlines()) or 1
    return f"{REDACTED} ({lines} line{'s' if lines != 1 else ''}, {len(text)} characters)"
