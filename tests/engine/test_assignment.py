"""Assignment policy: dealer, language, load, capacity, off-duty, nobody available, tie-break."""

from __future__ import annotations

from bot.teams.assignment import Candidate, choose


def cand(
    staff_id: int,
    *,
    role: str = "service",
    dealer: int | None = 1,
    langs: tuple[str, ...] = ("zh-CN",),
    on_duty: bool = True,
    active: bool = True,
    capacity: int = 10,
    load: int = 0,
) -> Candidate:
    return Candidate(staff_id, role, dealer, langs, on_duty, active, capacity, load)


def pick(cands: list[Candidate], **kw: object) -> int | None:
    args = {"role": "service", "dealer_id": 1, "locale": "zh-CN", **kw}
    chosen = choose(cands, **args)  # type: ignore[arg-type]
    return chosen.staff_id if chosen else None


def test_same_dealer_beats_lower_load_elsewhere() -> None:
    assert pick([cand(1, dealer=2, load=0), cand(2, dealer=1, load=5)]) == 2


def test_language_breaks_ties_within_the_dealer() -> None:
    assert pick([cand(1, langs=("en",)), cand(2, langs=("zh-CN",), load=3)]) == 2
    assert pick([cand(1, langs=("en",)), cand(2, langs=("zh-CN",))], locale="en") == 1


def test_fewest_open_cases_wins() -> None:
    assert pick([cand(1, load=4), cand(2, load=1), cand(3, load=2)]) == 2


def test_full_capacity_is_skipped() -> None:
    assert pick([cand(1, load=10, capacity=10), cand(2, load=12, capacity=20)]) == 2


def test_off_duty_and_inactive_are_skipped() -> None:
    assert pick([cand(1, on_duty=False), cand(2, active=False), cand(3, dealer=9)]) == 3


def test_other_roles_do_not_count() -> None:
    assert pick([cand(1, role="sales"), cand(2, role="factory")]) is None


def test_nobody_available() -> None:
    assert pick([]) is None
    assert pick([cand(1, on_duty=False), cand(2, load=10, capacity=10)]) is None


def test_deterministic_tie_break_on_spare_capacity_then_id() -> None:
    assert pick([cand(3, capacity=10), cand(2, capacity=30)]) == 2
    assert pick([cand(7), cand(4), cand(9)]) == 4


def test_exclusion_for_backups() -> None:
    assert pick([cand(1), cand(2, load=3)], exclude=frozenset({1})) == 2


def test_region_code_language_matches_base_language() -> None:
    assert pick([cand(1, langs=("en",)), cand(2, langs=("zh-TW",))], locale="zh-CN") == 2
