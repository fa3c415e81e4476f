"""Mask personal data (emails, phone numbers) in records shown outside the warehouse.

Quarantined Finale records land in Prefect artifacts, which anyone with access to the
Prefect UI can read. A vendor's record carries people's emails and phone numbers (in
``contactMechList[].infoString``, in notes, in free-text fields), so every value is masked
before it leaves:

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

Everything here is pure: same input, same output, nothing mutated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

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
