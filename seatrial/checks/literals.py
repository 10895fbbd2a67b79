"""Where secret literals hide in a manifest, and how to tell one from a harmless value.

Env values were the only place looked at once; keys also sit in ``args: [--api-key, KEY]``, in
probe commands (``redis-cli -a PASS ping``), in annotations, inside URLs (``redis://:PASS@host``),
in JVM options (``-Ddb.password=PASS``), in one-line JSON and ``.netrc`` files in ConfigMaps. One
walk (``leaks``) finds them all: the SEC checks report it and every report redacts what it found.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from seatrial.checks.inventory import Inventory, ref_of
from seatrial.checks.model import Ref

SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|PASS|SECRET|TOKEN|API[_-]?KEY|PRIVATE[_-]?KEY|CREDENTIAL|ACCESS[_-]?KEY|AUTH)", re.I
)
NOT_A_VALUE = re.compile(r"[_-](FILE|PATH|DIR|URL|HOST|PORT|NAME|ENABLED|TTL|SECONDS)$", re.I)
TOKEN_FORMATS = {
    "AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "OpenAI key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
# values a deploy step fills in: $(VAR), ${VAR}, $VAR, changeme, xxx, redacted (shared with SEC-003)
FILL_IN = r"\$\(.*\)|\$\{.*\}|\$[A-Za-z_][A-Za-z0-9_]*|changeme|change-me|xxx+|redacted"
PLACEHOLDER = re.compile(
    rf"^({FILL_IN}|<.*>|\*+|none|null|true|false|yes|no|on|off|enabled|disabled"
    r"|[0-9.]+(ms|s|m|h|Mi|Gi|%)?)$",  # numbers and durations: TOKEN_LATENCY_MS=20 is no token
    re.I,
)
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
JVM_OPTION = re.compile(
    r"(?:^|\s)-D([\w.-]*(?:password|passwd|secret|token|api[._-]?key|credential)[\w.-]*)=(\S+)", re.I
)
# short password flags, by the program that reads them: a separate word, or glued to the flag
PASSWORD_FLAG = {"redis-cli": "-a"}
GLUED_PASSWORD_FLAG = {"mysql": "-p", "mysqladmin": "-p", "mysqldump": "-p"}
DSN_NAME = re.compile(r"DSN", re.I)


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _token_like(value: str) -> bool:
    """Random-looking: long, one unbroken run of token characters mixing letters and digits, high
    entropy. Model IDs (NousResearch/Hermes-3-Llama-3.1-70B), paths and hostnames are not."""
    if len(value) < 24 or not re.fullmatch(r"[A-Za-z0-9_+=-]+", value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and entropy(value) > 4.0 and not re.search(r"[a-z]{3,}-[a-z]{3,}", value)


def _literal(value: str) -> bool:
    return bool(value) and not PLACEHOLDER.match(value)


def url_credential(value: str) -> tuple[str, str] | None:
    """(what, secret) for the first URL in ``value`` that carries a credential: a password, with or
    without a user (``redis://:PASS@redis``), or a token as the user (``https://TOKEN@host``)."""
    for match in URL.finditer(value):
        try:
            parts = urlsplit(match.group(0))
            user, password = parts.username, parts.password
        except ValueError:
            continue
        if password is not None and _literal(unquote(password)):
            return "a URL with a password in it", password
        if user and _literal(unquote(user)) and _token_like(unquote(user)):
            return "a URL with a token as its user", user
    return None


def looks_secret(name: str, value: str, *, loose_name: bool = False) -> str | None:
    """Why a literal (env var, argument, annotation, config entry) looks like a secret, or None.

    ``loose_name``: the name is a flag or an annotation key, where "token" or "secret" often names
    a mode or a reference (``--auth-mode token``, ``agent-inject-secret-db: database/creds/app``),
    so a secret-sounding name alone counts only for a value that could be a credential."""
    for what, pattern in TOKEN_FORMATS.items():
        if pattern.search(value):
            return f"its value looks like {'an' if what[0] in 'AEIOUaeiou' else 'a'} {what}"
    if not _literal(value):
        return None
    return _embedded_credential(value) or _named_or_random(name, value, loose_name=loose_name)


def _embedded_credential(value: str) -> str | None:
    """A credential inside a longer value: a URL's password or token, a JVM -D option."""
    url = url_credential(value)
    if url is not None:
        return f"its value is {url[0]}"
    jvm = JVM_OPTION.search(value)
    if jvm and _literal(jvm.group(2)):
        return f"its value sets -D{jvm.group(1)} to a literal"
    return None


def _named_or_random(name: str, value: str, *, loose_name: bool) -> str | None:
    """A literal under a secret's name, or a value that is random enough to be a key."""
    if value.startswith("/") or "://" in value:
        return None
    if SECRET_NAME.search(name) and not NOT_A_VALUE.search(name) and (not loose_name or _credential_shaped(value)):
        return f"{name} names a secret and holds a literal value"
    if _token_like(value):
        return f"its value is a {len(value)}-character high-entropy string"
    return None


def _credential_shaped(value: str) -> bool:
    """One word of six or more characters: not a path, a plain lowercase word or a hex digest
    (Helm's ``checksum/secret`` annotation is a hash of a Secret, not the Secret)."""
    return (
        len(value) >= 6
        and not re.search(r"[\s/]", value)
        and not re.fullmatch(r"[a-z]+(-[a-z]+)*|[0-9a-f]{32,}", value)
    )


def semi_public_key(name: str, value: str) -> str | None:
    """A client key meant to ship with an app but still an abuse vector: a DSN's key (Sentry's
    ``https://KEY@o0.ingest.sentry.io/1``). Reported apart from secrets, at a lower severity."""
    for match in URL.finditer(value):
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            continue
        keyed = parts.username and parts.password is None and _literal(parts.username)
        if keyed and (DSN_NAME.search(name) or "sentry" in (parts.hostname or "")):
            return "its value is a DSN with a client key in it"
    return None


def argv_entries(argv: Sequence[object]) -> Iterator[tuple[str, str]]:
    """(name, value) for what a command line passes: ``--flag=value``, ``--flag value``, a
    program's password flag (``redis-cli -a VALUE``, ``mysql -pVALUE``) and each bare argument.
    A shell script in one argument (``sh -c "redis-cli -a $P ping"``) is read as its words."""
    words = [str(a) for a in argv]
    for w in list(words):
        if " " in w.strip():
            try:
                words += shlex.split(w)
            except ValueError:
                words += w.split()
    program = ""
    for i, w in enumerate(words):
        program = w.rsplit("/", 1)[-1] if w.rsplit("/", 1)[-1] in PASSWORD_FLAG | GLUED_PASSWORD_FLAG else program
        nxt = words[i + 1] if i + 1 < len(words) else ""
        glued = GLUED_PASSWORD_FLAG.get(program, "")
        if w.startswith("--") and "=" in w:
            flag, _, value = w.partition("=")
            yield flag, value
        elif w.startswith("--") and nxt and not nxt.startswith("-"):
            yield w, nxt
        elif w == PASSWORD_FLAG.get(program) and nxt:
            yield f"{w} (the {program} password)", nxt
        elif glued and w.startswith(glued) and len(w) > len(glued):
            yield f"{glued} (the {program} password)", w[len(glued) :]
        else:
            yield "", w


def config_entries(key: str, value: object) -> Iterator[tuple[str, str]]:
    """A ConfigMap entry as (name, value) pairs: the scalars of a JSON document, the ``password``
    of a ``.netrc`` line, each ``NAME=value`` / ``name: value`` line of a config file, or the
    entry itself when a line has no separator."""
    text = str(value)
    if text.lstrip().startswith(("{", "[")):
        try:
            yield from _json_scalars(key, json.loads(text))
            return
        except ValueError:
            pass
    for line in text.splitlines() or [""]:
        words = line.split()
        for i, w in enumerate(words[:-1]):  # .netrc's "password VALUE", redis.conf's "requirepass VALUE"
            if SECRET_NAME.search(w) and not w.endswith((":", "=")):
                yield w, words[i + 1]
        k, sep, v = line.partition("=") if "=" in line else line.partition(":")
        yield (k.strip(), v.strip().strip("\"'")) if sep else (key, line.strip())


def _json_scalars(name: str, node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_scalars(str(k), v)
    elif isinstance(node, list):
        for v in node:
            yield from _json_scalars(name, v)
    elif node is not None and not isinstance(node, bool):
        yield name, str(node)


@dataclass(frozen=True)
class Leak:
    """One literal that looks secret: where it is, why, and the value (for redaction only; no
    finding or message ever quotes it)."""

    check: str
    target: Ref
    field: str
    why: str
    value: str


PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HOOKS = ("postStart", "preStop")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _judge(check: str, ref: Ref, where: str, name: str, value: str, *, loose_name: bool = False) -> Iterator[Leak]:
    why = looks_secret(name, value, loose_name=loose_name)
    if why:
        yield Leak(check, ref, where, why, _secret_part(value))
        return
    semi = semi_public_key(name, value)
    if semi:
        yield Leak("SEC-010", ref, where, semi, _secret_part(value))


def _secret_part(value: str) -> str:
    """What to redact: the credential inside a URL or a -D option, else the whole value."""
    url = url_credential(value)
    if url is not None:
        return unquote(url[1])
    jvm = JVM_OPTION.search(value)
    return jvm.group(2) if jvm else value


def _commands(spec: Any) -> Iterator[tuple[str, Any]]:
    """A container's command lines: its command and args, its probes' and hooks' exec commands."""
    yield "command", spec.get("command")
    yield "args", spec.get("args")
    for p in PROBES:
        yield f"{p}.exec.command", ((spec.get(p) or {}).get("exec") or {}).get("command")
    for h in HOOKS:
        yield (
            f"lifecycle.{h}.exec.command",
            (((spec.get("lifecycle") or {}).get(h) or {}).get("exec") or {}).get("command"),
        )


def leaks(inv: Inventory) -> Iterator[Leak]:
    """Every secret-looking literal in the inventory, each with the check that reports it:
    SEC-001 env values, SEC-002 ConfigMap entries, SEC-008 commands, arguments and probe or hook
    commands, SEC-009 annotations, SEC-010 DSN client keys (wherever they are). A field may leak
    more than once; the checks report it once, the reports redact every value."""
    for w in inv.workloads:
        annotated = [("metadata.annotations", w.obj.get("metadata") or {})]
        if w.template is not w.obj:
            annotated.append(("spec.template.metadata.annotations", w.template.get("metadata") or {}))
        for where, meta in annotated:
            for k, v in (meta.get("annotations") or {}).items():
                if k != LAST_APPLIED:
                    name = str(k).rsplit("/", 1)[-1]
                    yield from _judge("SEC-009", w.ref, f"{where}[{k}]", name, str(v), loose_name=True)
        for c in w.containers(init=True):
            for env in c.spec.get("env") or []:
                if isinstance(env, dict) and "value" in env:
                    name, value = str(env.get("name", "")), str(env.get("value") or "")
                    yield from _judge("SEC-001", w.ref, f"{c.where}.env[{name}]", name, value)
            for field, argv in _commands(c.spec):
                if isinstance(argv, list):
                    for name, value in argv_entries(argv):
                        yield from _judge("SEC-008", w.ref, f"{c.where}.{field}", name, value, loose_name=True)
    for cm in inv.of("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            for name, val in config_entries(str(key), value):
                yield from _judge("SEC-002", ref_of(cm), f"data[{key}]", name, val)
