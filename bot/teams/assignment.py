"""Assignment policy: who from the staff pool takes a role in a customer's team."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A staff member as the policy sees them."""

    staff_id: int
    role: str
    dealer_id: int | None
    languages: tuple[str, ...]
    on_duty: bool
    active: bool
    capacity: int
    open_load: int


def _lang_matches(candidate: Candidate, locale: str) -> bool:
    base = locale.split("-")[0].lower()
    return any(lang.split("-")[0].lower() == base for lang in candidate.languages)


def choose(
    candidates: Sequence[Candidate],
    *,
    role: str,
    dealer_id: int | None,
    locale: str,
    exclude: frozenset[int] = frozenset(),
) -> Candidate | None:
    """Pick the best on-duty candidate under capacity, or None if nobody can take the role.

    Order: same dealer and language, then same dealer, then same language, then anyone; within a
    tier fewest open cases, then most spare capacity, then lowest id (deterministic).
    """
    eligible = [
        c
        for c in candidates
        if c.role == role
        and c.active
        and c.on_duty
        and c.open_load < c.capacity
        and c.staff_id not in exclude
    ]
    if not eligible:
        return None

    def rank(c: Candidate) -> tuple[int, int, int, int]:
        same_dealer = dealer_id is not None and c.dealer_id == dealer_id
        tier = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[
            (same_dealer, _lang_matches(c, locale))
        ]
        return (tier, c.open_load, -(c.capacity - c.open_load), c.staff_id)

    return min(eligible, key=rank)
