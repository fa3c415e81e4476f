"""Defensive masking of anything that looks like a credential, before it leaves the process.

Callers hand alerts an error summary that is already redacted (``pipeline.sync`` masks the
Finale secrets it knows). This module is the second, independent layer: an alert goes to
people's inboxes and to a chat channel, so whatever slipped past the first layer must not
slip past this one. It knows no secret values by default; it masks by *shape*:

- ``Authorization``-style values: ``Basic ...``, ``Bearer ...``, ``Token ...``;
- credentials in URLs (``scheme://user:pass@host``) for any scheme, including database URLs;
- ``key=value`` / ``"key": "value"`` pairs whose key names a secret (password, token, key,
  secret, session id, signature, ...);
- well-known token formats: Slack (``xox?-``), SendGrid (``SG.``), GitHub, AWS access keys,
  JWTs, Slack webhook URLs;
- long base64-like strings that mix upper case, lower case and digits (UUIDs and hex
  checksums are kept: they are lower case only, and they are what one needs to debug).

Exact secret values the caller knows (the SendGrid key, the webhook URL) can be passed too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

#: Default length limit of an error summary in an alert.
ERROR_LIMIT = 1000

# Names of fields whose values are credentials, as a regex alternation. "key" alone is
# included on purpose (``?key=...`` in a URL is how many APIs authenticate).
_SECRET_NAMES = (
    r"api[_-]?key|apikey|api[_-]?secret|access[_-]?key|secret[_-]?key|client[_-]?secret|"
    r"private[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|"
    r"session[_-]?secret|session[_-]?id|sessionid|jsessionid|passwd|password|pwd|pass|"
    r"secret|token|key|auth|signature|sig|credentials?|webhook[_-]?url"
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Slack webhook URLs are bearer credentials in themselves: mask the whole path.
    (
        re.compile(r"https?://hooks\.slack(?:-gov)?\.com/[^\s\"'<>]*", re.IGNORECASE),
        f"https://hooks.slack.com/{MASK}",
    ),
    # user:password@ in any URL (https, postgresql+psycopg, redis, ...).
    (
        re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s:@\"'<>]+:[^/\s@\"'<>]*@", re.IGNORECASE),
        rf"\1{MASK}@",
    ),
    # Authorization header values, with or without the header name.
    (
        re.compile(r"\b(Basic|Bearer|Token|Digest)\s+[A-Za-z0-9+/=._~-]{6,}", re.IGNORECASE),
        rf"\1 {MASK}",
    ),
    # JSON / dict members: "password": "x", 'api_key': 'x'.
    (
        re.compile(
            rf"""(["'](?:[\w-]*?(?:{_SECRET_NAMES}))["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""",
            re.IGNORECASE,
        ),
        rf"\1\2{MASK}\2",
    ),
    # key=value and key: value in query strings, cookies, form bodies, log lines.
    (
        re.compile(
            rf"""(\b[\w-]*?(?:{_SECRET_NAMES})\b\s*[=:]\s*)(?!{re.escape(MASK)})"""
            r"""(?:"[^"]*"|'[^']*'|[^\s&;,"'<>)\]}]+)""",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    # Well-known token formats.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),  # Slack tokens
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # SendGrid keys
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),  # GitHub tokens
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # JWTs
]

# Long base64/base64url-like runs. Checked separately so the character-class test below can
# keep UUIDs, hex digests and ordinary long words. "/" is left out on purpose: with it, a
# URL path such as /Acme/api/product/SKU123 would read as one long mixed-case token.
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+_-]{32,}={0,2}")


def _looks_random(token: str) -> bool:
    # A secret is random: it mixes upper case, lower case and digits. UUIDs and hex digests
    # (lower case + digits) and identifiers such as snake_case names do not.
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask known secret values and anything that looks like a credential.

    Args:
        text: free text bound for an email, a chat message, an artifact or a log line.
        secrets: exact values to mask wherever they occur. ``None`` and values shorter than
            6 characters are skipped (masking a short value would shred unrelated text).

    Returns:
        ``text`` with every secret replaced by ``***``.
    """
    # Longest first, so a secret that contains another is masked whole.
    for value in sorted((s for s in secrets if s and len(s) >= 6), key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _LONG_TOKEN.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), text)


def truncate(text: str, limit: int = ERROR_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more chars)"


def summarize_error(
    text: str | None, secrets: Iterable[str | None] = (), limit: int = ERROR_LIMIT
) -> str | None:
    """Redact, then truncate, an error message for an alert (``None`` stays ``None``).

    Masking happens before truncation so a secret cut in half at the limit cannot leak.
    """
    if text is None:
        return None
    return truncate(redact_secrets(text, secrets), limit)
