"""Redaction, the second line of defence: known secret values in every spelling, and anything
token-shaped, become <redacted> in every text a report writes.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

# ---- redaction ---------------------------------------------------------------------------
_TOKENISH = re.compile(
    r"(sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|hf_[A-Za-z0-9]{30,}|(AKIA|ASIA)[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|Bearer\s+[A-Za-z0-9._~+/=-]{8,})"
)


def _spellings(secret: str) -> set[str]:
    """A secret as it may be written: plain, base64 (a Secret's data, a basic-auth header) and
    URL-encoded (a password inside a URL)."""
    b64 = base64.b64encode(secret.encode()).decode()
    return {secret, b64, b64.rstrip("="), urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Known secret values, in each spelling, and anything token-shaped become <redacted>."""
    known = {form for s in secrets if s and len(s) >= 4 for form in _spellings(s)}
    for s in sorted(known, key=len, reverse=True):
        text = text.replace(s, "<redacted>")
    return _TOKENISH.sub("<redacted>", text)
