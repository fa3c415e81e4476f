"""Masking of secrets and personal data in anything that leaves the process.

The one place that knows what a secret looks like. Every layer uses it: the connectors for
their errors (``Redactor``), the pipeline for the errors it records, the alert channels for
what reaches inboxes and chat, the reports for what reaches the Prefect UI. Nothing of the
project is imported here, so any package may import it.

Secrets, two strengths built on one list of secret names (``SECRET_NAMES``):

- ``redact_text``: exact values the caller knows (API secret, password, session ids, the
  SendGrid key, a webhook URL), plus what is a credential by its *name or format*:
  ``Authorization``-style values (``Basic``/``Bearer``/``Token``/``Digest ...``), credentials in
  URLs (``scheme://user:pass@host``), ``"key": "value"`` members and ``key=value`` pairs whose
  key names a secret, Slack webhook URLs, and well-known token formats (Slack, SendGrid,
  GitHub, AWS access key ids, JWTs). Precise enough for a connector's errors, whose URLs
  carry long base64 filters one needs to reproduce a failing request;
- ``redact_secrets``: ``redact_text`` plus a defensive layer by *shape*, for text bound for
  people (alerts, artifacts) that may carry secrets nobody registered: ``key: value`` log
  style pairs, and long base64-like runs that mix upper case, lower case and digits (UUIDs
  and hex checksums are kept: they are lower case only, and they are what one needs to
  debug);
- ``mask_url``: a URL without ``user:pass@`` and with secret query values masked;
- ``Redactor``: the secret values one client holds, growing as sessions are issued;
- ``register_log_secret``: a value (a webhook URL, a subscriber's URL) masked in the
  ``httpx`` logger's ``HTTP Request: POST <url>`` lines.

Personal data (quarantined records shown in Prefect artifacts, which anyone with access to
the Prefect UI can read): a vendor's record carries people's emails and phone numbers (in
``contactMechList[].infoString``, in notes, in free-text fields), so ``mask_pii`` masks them:

- emails keep the first letter of the mailbox and of the domain, and the top-level
  domain: ``jane.doe@acme-supply.com`` -> ``j***@a***.com``. Enough to tell records
  apart while debugging, not enough to write to anyone;
- phone numbers keep their last two digits: ``+1 (555) 123-4567`` -> ``***67``.

Masking is by field and by shape. A field whose name says phone/fax/mobile/tel (or a Finale
contact mechanism of type ``TELECOM_NUMBER``) is masked as a phone whatever its format; a
field named email likewise. Any other string is scanned for email- and phone-shaped text.
Phone-shaped means grouped digits (``555-123-4567``, ``(555) 123 4567``) or a ``+``
followed by 7-15 digits; bare digit runs are left alone because in Finale data they are
SKUs, UPCs and ids, and dates are recognised and left alone too.

Everything here but ``Redactor`` is pure: same input, same output, nothing mutated.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
DEFAULT_BODY_LIMIT = 500

#: Known secret values shorter than this are not masked: masking a 2-character value
#: everywhere would shred unrelated text.
MIN_SECRET_LENGTH = 4

#: Names of settings, fields, parameters and headers whose values are credentials, as a regex
#: alternation. A name *ending* in one of them is a secret name too (``FINALE_API_SECRET``,
#: ``sessionSecret``, ``x-api-key``). "key" alone is included on purpose (``?key=...`` in a
#: URL is how many APIs authenticate).
SECRET_NAMES = (
    r"api[_-]?key|apikey|api[_-]?secret|access[_-]?key|secret[_-]?key|client[_-]?secret|"
    r"private[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|"
    r"session[_-]?secret|session[_-]?id|sessionid|jsessionid|passwd|password|pwd|pass|"
    r"secret|token|key|auth|signature|sig|credentials?|webhook[_-]?url"
)

_SECRET_NAME = re.compile(rf"[\w-]*?(?:{SECRET_NAMES})", re.IGNORECASE)


def _pair(separators: str) -> re.Pattern[str]:
    """``name<sep>value`` where the name is a secret name (a quoted value may hold spaces)."""
    return re.compile(
        rf"""(\b[\w-]*?(?:{SECRET_NAMES})\b\s*[{separators}]\s*)(?!{re.escape(MASK)})"""
        r"""(?:"[^"]*"|'[^']*'|[^\s&;,"'<>)\]}]+)""",
        re.IGNORECASE,
    )


# Credentials by name or format: precise, safe on any text.
_CREDENTIALS: list[tuple[re.Pattern[str], str]] = [
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
    # JSON / dict members: "password": "x", 'api_key': 'x', "sessionSecret": "x".
    (
        re.compile(
            rf"""(["'](?:[\w-]*?(?:{SECRET_NAMES}))["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""",
            re.IGNORECASE,
        ),
        rf"\1\2{MASK}\2",
    ),
    # key=value in query strings, cookies, form bodies, URL path parameters (;jsessionid=).
    (_pair("="), rf"\1{MASK}"),
    # Well-known token formats.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),  # Slack tokens
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # SendGrid keys
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),  # GitHub tokens
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # JWTs
]

# key: value in log lines and messages. Only in the defensive layer: in a connector's own
# messages "credentials: <what the server said>" is text worth keeping.
_COLON_PAIR = _pair(":")

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


def is_secret_name(name: str) -> bool:
    """True when a field, parameter or setting called ``name`` holds a credential."""
    return _SECRET_NAME.fullmatch(name) is not None


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask known secret values and whatever is a credential by its name or format.

    Args:
        text: text that may end up in a log, an exception message or a database row.
        secrets: exact values to mask wherever they occur. ``None`` and values shorter than
            ``MIN_SECRET_LENGTH`` are skipped.

    Returns:
        ``text`` with every secret replaced by ``***``.
    """
    # Longest first, so a secret that contains another is masked whole.
    known = sorted((s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH), key=len)
    for value in reversed(known):
        text = text.replace(value, MASK)
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``redact_text``, then mask anything that merely *looks* like a credential.

    For text bound for people (an email, a chat message, a Prefect artifact): whatever
    slipped past the first layer must not slip past this one.

    Args:
        text: free text.
        secrets: exact values to mask too (see ``redact_text``).

    Returns:
        ``text`` with every secret replaced by ``***``.
    """
    text = _COLON_PAIR.sub(rf"\1{MASK}", redact_text(text, secrets))
    return _LONG_TOKEN.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), text)


def mask_url(url: str) -> str:
    """Return ``url`` without credentials: no ``user:pass@``, secret query values masked.

    Other parameters (``filter``, ``limit``, ``offset``) are kept, because they are what one
    needs to reproduce a failing request.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    path = re.sub(r";jsessionid=[^/?#]*", f";jsessionid={MASK}", parts.path, flags=re.I)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def truncate(text: str, limit: int = DEFAULT_BODY_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more chars)"


def summarize_error(
    text: str | None, secrets: Iterable[str | None] = (), limit: int = 1000
) -> str | None:
    """Redact (defensively), then truncate, an error message for an alert.

    Masking happens before truncation so a secret cut in half at the limit cannot leak.
    ``None`` stays ``None``.
    """
    if text is None:
        return None
    return truncate(redact_secrets(text, secrets), limit)


class Redactor:
    """Masks the secrets one client knows about; session ids are added as they are issued.

    Thread-safe: the client's threads may add session ids while others format errors.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        """Start with the static secrets (API secret, password)."""
        self._lock = threading.Lock()
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str | None) -> None:
        """Remember one more secret value (e.g. a new session id)."""
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def add_basic_credentials(self, user: str, password: str) -> None:
        """Remember the Basic token of ``user:password`` too, in case a header is echoed."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.add(token)
        self.add(password)

    def text(self, text: str) -> str:
        """Mask known secrets and credential-shaped values in ``text`` (``redact_text``)."""
        with self._lock:
            secrets = list(self._secrets)
        return redact_text(text, secrets)

    def url(self, url: str) -> str:
        """Mask a URL for display: credentials removed, then known secrets masked."""
        return self.text(mask_url(url))

    def body(self, body: bytes | str, limit: int = DEFAULT_BODY_LIMIT) -> str:
        """Render a response body for an error message: decoded, masked, truncated."""
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        # Mask before truncating, so a secret cut in half at the limit cannot slip through.
        return truncate(self.text(text), limit)


class _HttpxLogRedactor(logging.Filter):
    """Masks registered secrets in the ``httpx`` logger's ``HTTP Request: POST <url>`` lines.

    httpx logs every request URL at INFO. For a Slack webhook or an event subscriber the URL
    is a secret, and a deployment that turns INFO logging on (or ships ``httpx`` logs to
    Prefect) would leak it. One filter on that logger, shared by every client, masks the
    values registered with ``register_log_secret``.
    """

    def __init__(self) -> None:
        super().__init__("inventory-sync-redactor")
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def register(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if secrets:
            message = record.getMessage()
            if any(s in message for s in secrets):
                record.msg = redact_secrets(message, secrets)
                record.args = ()
        return True


_HTTPX_REDACTOR = _HttpxLogRedactor()
logging.getLogger("httpx").addFilter(_HTTPX_REDACTOR)


def register_log_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever the ``httpx`` logger would print it (request URLs)."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        _HTTPX_REDACTOR.register(secret)


# -- personal data ---------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9][A-Za-z0-9._%+-]*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)\.([A-Za-z]{2,24})\b"
)

# Phone shapes; the digit count (7-15) and the date check are applied afterwards.
_PHONE = re.compile(
    r"(?<![\w+/.:-])"
    r"(?:"
    r"\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?)(?:[\s.-]?\d{2,5}){1,5}"  # +44 20 7946 0958
    r"|\(\d{2,4}\)\s?\d{3,4}[\s.-]?\d{3,4}"  # (555) 123-4567
    r"|\d{2,4}([\s.-])\d{2,5}(?:\1\d{2,5}){1,3}"  # 555-123-4567, 555 123 4567, 555.123.4567
    r"|\d{3}-\d{4}"  # 555-1234
    r")"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"  # extension
    r"(?![\w/:-]|\.\d)"
)

_EXTENSION = re.compile(r"\s*(?:x|ext\.?)\s*\d{1,5}\s*$", re.IGNORECASE)

# Date-like groups (2024-01-15, 15.01.2024, 2024.01.15) are not phone numbers.
_DATE = re.compile(r"^(?:\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4})$")

# Field names are compared word by word (camelCase, snake_case, UPPER_CASE), so that
# "cancelled" is not a "cell" and "hotel" is not a "tel".
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_PHONE_WORDS = frozenset(
    {"phone", "phones", "fax", "mobile", "cell", "cellphone", "tel", "telephone", "telecom", "sms"}
)
_EMAIL_WORDS = frozenset({"email", "emails", "mail"})
# Identifier fields (productId, orderUrl, upc, ...) are never scanned for phone shapes: in
# Finale a SKU such as "100-200-3000" is the record's key, and masking it would hide which
# record was quarantined. Emails are still masked there.
_ID_WORDS = frozenset(
    {"id", "ids", "url", "uri", "key", "sku", "upc", "ean", "gtin", "barcode", "code", "number"}
)

# Finale contact mechanisms: {"contactMechTypeId": "TELECOM_NUMBER", "infoString": "..."}.
_MECH_TYPE_KEYS = ("contactMechTypeId", "contactMechType", "type")


def mask_email(email: str) -> str:
    """``jane.doe@acme-supply.co.uk`` -> ``j***@a***.uk``.

    Args:
        email: one email address (surrounding whitespace is ignored).

    Returns:
        The masked address; a value without ``@`` is masked whole (``***``).
    """
    local, sep, domain = email.strip().rpartition("@")
    if not sep or not local or not domain:
        return MASK
    labels = domain.split(".")
    tld = labels[-1] if len(labels) > 1 else ""
    masked_domain = f"{labels[0][:1]}{MASK}" + (f".{tld}" if tld else "")
    return f"{local[:1]}{MASK}@{masked_domain}"


def mask_phone(phone: str) -> str:
    """``+1 (555) 123-4567`` -> ``***67``: only the last two digits survive.

    A value with fewer than four digits is masked whole: two of three digits would be most
    of it.
    """
    # The extension is not part of the number whose tail we keep.
    number = _EXTENSION.sub("", phone)
    digits = re.sub(r"\D", "", number)
    if len(digits) < 4:
        return MASK
    return f"{MASK}{digits[-2:]}"


def _phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _DATE.match(text.strip()):
        return text
    return mask_phone(text)


def mask_text(text: str, *, phones: bool = True) -> str:
    """Mask every email- and phone-shaped part of free text, keeping the rest.

    >>> mask_text("call Jane at 555-123-4567 or jane@acme.com")
    'call Jane at ***67 or j***@a***.com'

    Args:
        text: free text.
        phones: also mask phone-shaped text (off for identifier fields).
    """
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(_phone_match, text) if phones else text


def _field_kind(name: str) -> str | None:
    """ "email", "phone", "id" or None, from a field name's words."""
    words = {w.lower() for w in _WORDS.findall(name)}
    if words & _EMAIL_WORDS:
        return "email"
    if words & _PHONE_WORDS:
        return "phone"
    if words & _ID_WORDS:
        return "id"
    return None


def _mask_as(kind: str, value: Any) -> Any:
    """Mask ``value`` as an email or a phone, whatever its shape, at any depth."""
    if isinstance(value, Mapping):
        return {k: _mask_as(kind, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_as(kind, v) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if kind == "phone":
        # "work", "mobile", "" carry no number; anything with digits is the number.
        return mask_phone(value) if any(c.isdigit() for c in value) else value
    if _EMAIL.search(value):
        return mask_text(value)
    # An email field whose value does not parse as one ("jane at acme dot com", a typo):
    # mask it whole rather than guess.
    return MASK if "@" in value or " at " in value else mask_text(value)


def _mech_kind(record: Mapping[str, Any]) -> str | None:
    for key in _MECH_TYPE_KEYS:
        kind = str(record.get(key) or "").upper()
        if "TELECOM" in kind or "PHONE" in kind or "FAX" in kind:
            return "phone"
        if "EMAIL" in kind:
            return "email"
    return None


def mask_pii(value: Any) -> Any:
    """Return a copy of ``value`` with emails and phone numbers masked at any depth.

    Dicts, lists and tuples are walked; strings are masked by their field name (see the
    module docstring) or by shape; other scalars are returned as they are. The input is not
    modified.

    Args:
        value: a record (e.g. a raw Finale JSON object), a list, or a scalar.

    Returns:
        The masked copy (lists stay lists, tuples become lists, mappings become dicts).
    """
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        mech = _mech_kind(value)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key)
            kind = mech if mech is not None and name == "infoString" else _field_kind(name)
            if kind in ("email", "phone"):
                out[key] = _mask_as(kind, item)
            elif kind == "id" and isinstance(item, str):
                out[key] = mask_text(item, phones=False)
            else:
                out[key] = mask_pii(item)
        return out
    if isinstance(value, list | tuple):
        return [mask_pii(item) for item in value]
    return value
