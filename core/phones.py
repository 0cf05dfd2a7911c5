"""Phone numbers: parse what providers and operators type into E.164, and mask for display."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from core.settings import get_settings


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number (the message says why, never echoing the text:
    it ends up in API answers and logs)."""


# The console's phone simulator speaks only from this range: Malian national numbers are
# 8 digits and none starts with 0 (no trunk prefix; mobiles 5x-9x, fixed 2x/44, toll free 80),
# so +223 00 xx xx xx can never belong to a real subscriber. It is parsed here like any number,
# so a provider's webhook "from" such a number is handled normally (it cannot really happen).
SIMULATOR_PREFIX = "+22300"
SIMULATOR_EXAMPLE = "+22300000001"
_SIMULATOR_NUMBER = re.compile(r"\+22300\d{6}")


def is_simulator_number(e164: str) -> bool:
    """True for numbers of the simulator range (+223 00 xx xx xx)."""
    return _SIMULATOR_NUMBER.fullmatch(e164 or "") is not None


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Return the E.164 form of ``raw`` ("76 12 34 56" in Mali → "+22376123456").

    The one normaliser for every way a number arrives (SMS webhooks, USSD hops, contacts,
    the console). National numbers are read in ``default_region``, by default the deployment's
    ``DEME_DEFAULT_COUNTRY``; digits that are not a national number are retried as an
    international one without its "+" (aggregators drop it). Memoised: people write many
    times, and phonenumbers' parse+validate is one of the costlier steps of the hot path.
    """
    return _normalize(raw, default_region or get_settings().default_country)


@lru_cache(maxsize=8192)
def _normalize(raw: str, region: str) -> str:
    try:
        return _parse(raw, region)
    except InvalidPhoneNumber:
        text = (raw or "").strip()
        if text.isdigit() and not text.startswith("00"):
            return _parse("+" + text, region)
        raise


def _parse(raw: str, region: str) -> str:
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if text.startswith("00") and not _looks_national_simulator(text):
        text = "+" + text[2:]
    compact = re.sub(r"[\s.\-]", "", text)
    if compact.startswith("00") and len(compact) == 8:  # "00 12 34 56" in Mali
        compact = "+223" + compact
    if is_simulator_number(compact):
        return compact
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _looks_national_simulator(text: str) -> bool:
    return len(re.sub(r"[\s.\-]", "", text)) == 8


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
