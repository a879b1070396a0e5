"""Routing of requests that need a person: category, priority and a reason for staff, in both languages."""

from __future__ import annotations

import pytest

from knowledge.routing import RoutingDecision, is_complaint, route_request


@pytest.mark.parametrize(
    ("text", "locale", "category", "priority"),
    [
        ("我的车刹车有异响", "zh-CN", "service", "normal"),
        ("发动机故障灯亮了", "zh-CN", "service", "normal"),
        ("想换四条轮胎，多少钱", "zh-CN", "service", "normal"),
        ("My brakes are squeaking", "en", "service", "normal"),
        ("The check engine light came on", "en", "service", "normal"),
        ("I need new tyres", "en", "service", "normal"),
        ("OTA升级失败了，车机黑屏", "zh-CN", "factory", "normal"),
        ("我的车有召回吗", "zh-CN", "factory", "normal"),
        ("电池衰减得很厉害", "zh-CN", "factory", "normal"),
        ("The software update failed overnight", "en", "factory", "normal"),
        ("Is there a recall on my car?", "en", "factory", "normal"),
        ("My battery degradation seems too fast", "en", "factory", "normal"),
        ("想预约试驾E7", "zh-CN", "sales", "normal"),
        ("贷款买车首付多少", "zh-CN", "sales", "normal"),
        ("我的旧车能置换吗", "zh-CN", "sales", "normal"),
        ("I'd like to book a test drive", "en", "sales", "normal"),
        ("What's the price of the X7 and can I get a loan?", "en", "sales", "normal"),
        ("How much would you give me for a trade-in?", "en", "sales", "normal"),
        ("I want to renew my car insurance", "en", "sales", "normal"),
    ],
)
def test_categories(text: str, locale: str, category: str, priority: str) -> None:
    d = route_request(text, locale=locale)
    assert isinstance(d, RoutingDecision)
    assert (d.category, d.priority) == (category, priority), d.reason
    assert d.reason


def test_reason_names_the_keywords_in_text_order() -> None:
    d = route_request("我的车刹车有异响", locale="zh-CN")
    assert d.reason == "keywords: 刹车, 异响 -> service"


@pytest.mark.parametrize(
    "text",
    [
        "我要投诉你们的服务",
        "太差了，给你们差评",
        "你们就是骗子，退钱！",
        "车又坏了，这已经是第三次了",
        "I want to complain about the service advisor",
        "This is the third time the car is in for the same fault",
        "You ripped me off, I want my money back",
        "Absolutely unacceptable, nobody answers my calls",
    ],
)
def test_complaints_are_high_priority(text: str) -> None:
    assert is_complaint(text)
    d = route_request(text, locale="en")
    assert d.category == "complaint" and d.priority == "high"
    assert d.reason.startswith("complaint:")


def test_repeated_failed_repairs_make_a_complaint() -> None:
    assert not is_complaint("The rattle is back")
    assert is_complaint("The rattle is back", recent_failed_repairs=2)


def test_shouting_is_a_complaint() -> None:
    assert is_complaint("WHY IS NOBODY FIXING MY CAR")
    assert is_complaint("还没好！！！")


@pytest.mark.parametrize(
    "text",
    [
        "刹车失灵了",
        "车子冒烟了怎么办",
        "发动机舱着火了",
        "出了车祸，有人受伤",
        "My brakes failed on the motorway",
        "There is smoke coming from under the bonnet",
        "I had an accident and my passenger is injured",
    ],
)
def test_safety_is_urgent(text: str) -> None:
    d = route_request(text, locale="en")
    assert d.priority == "urgent", d.reason
    assert d.category == "service"
    assert "safety" in d.reason


def test_accident_without_injury_is_not_urgent() -> None:
    d = route_request("I had a small accident, how do I claim?", locale="en")
    assert d.priority != "urgent"


def test_unsafe_complaint_is_urgent_complaint() -> None:
    d = route_request("投诉！刚修好的车刹车失灵了", locale="zh-CN")
    assert (d.category, d.priority) == ("complaint", "urgent")


def test_deposit_refund_question_is_sales_not_complaint() -> None:
    assert not is_complaint("定金可以退吗")
    assert route_request("定金可以退吗", locale="zh-CN").category == "sales"
    assert route_request("Can I get my deposit refunded?", locale="en").category == "sales"


def test_general_and_kb_hint() -> None:
    d = route_request("hello", locale="en")
    assert d.category == "general" and d.priority == "low"
    hinted = route_request("我想问一下积分的事情", locale="zh-CN", kb_hint="general")
    assert hinted.category == "general"
    hinted = route_request("Can someone call me about my car?", locale="en", kb_hint="sales")
    assert hinted.category == "sales" and "sales" in hinted.reason


def test_many_recent_cases_raise_priority() -> None:
    d = route_request("When is my next service due?", locale="en", recent_case_count=3)
    assert d.category == "service" and d.priority == "high"
    assert "recent cases" in d.reason
