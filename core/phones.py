"""Phone numbers: parse what providers and operators type into E.164, and mask for display."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number (the message says why, never echoing the text:
    it ends up in API answers and logs)."""


def normalize_phone(raw: str, default_region: str = "ML") -> str:
    """Return the E.164 form of ``raw`` ("76 12 34 56" in Mali → "+22376123456")."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """Show the country code and last two digits only: "+22376123456" → "+223 •• •• •• 56"."""
    if not e164:
        return ""
    try:
        parsed = phonenumbers.parse(e164, None)
        country = f"+{parsed.country_code}"
        national = str(parsed.national_number)
    except phonenumbers.NumberParseException:
        return "•" * max(len(e164) - 2, 0) + e164[-2:]
    hidden = max(len(national) - 2, 0)
    groups = " ".join(["••"] * ((hidden + 1) // 2))
    return f"{country} {groups} {national[-2:]}".replace("  ", " ")
