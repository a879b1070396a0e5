"""VIN validation: 17 characters, no I/O/Q, with the ISO 3779 check digit as an option."""

from __future__ import annotations

import re

from bot.errors import InvalidInput

_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def normalize_vin(raw: str) -> str:
    """Upper-case and strip spaces and dashes people type into VINs."""
    return re.sub(r"[\s-]", "", raw or "").upper()


def check_digit(vin: str) -> str:
    """The check digit (position 9) a VIN should carry: 0-9 or X."""
    total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def validate_vin(raw: str, *, require_check_digit: bool = False) -> str:
    """The normalized VIN, or InvalidInput saying what is wrong with it."""
    vin = normalize_vin(raw)
    if len(vin) != 17:
        raise InvalidInput("vin.length", f"a VIN has 17 characters, this one has {len(vin)}")
    if any(c in "IOQ" for c in vin):
        raise InvalidInput("vin.letters", "a VIN never contains the letters I, O or Q")
    if not _VIN.fullmatch(vin):
        raise InvalidInput("vin.characters", "a VIN has only letters and digits")
    if require_check_digit and vin[8] != check_digit(vin):
        raise InvalidInput("vin.check_digit", "the VIN's check digit (9th character) does not match")
    return vin
