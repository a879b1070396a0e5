"""The knowledge base in the engine: answers in the customer's language, hands off when unsure."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.conversations import buttons
from bot.conversations.flows import InboundMessage, receive_customer_message
from bot.conversations.models import Case, Message
from bot.runtime import Runtime
from bot.seed import seed_demo
from bot.settings import Settings
from bot.teams.models import Customer
from knowledge import service as knowledge_service
from knowledge.answerer import KnowledgeAnswerer
from tests.conftest import REDIS_URL, need
from tests.live import DEMO_HASH


async def _ready(rt: Runtime) -> None:
    async with rt.transaction() as session:
        await seed_demo(session, password_hash=DEMO_HASH, password="x")
    assert isinstance(rt.answerer, KnowledgeAnswerer)
    await rt.answerer.reload(rt.maker)


async def _say(
    rt: Runtime, user: str, text: str, locale: str, n: int = 1
) -> tuple[int | None, int | None, str]:
    msg = InboundMessage(
        channel="webchat",
        external_user_id=user,
        chat_id=user,
        external_message_id=f"{user}-{n}",
        text=text,
        display_name=user,
        locale=locale,
    )
    async with rt.transaction() as session:
        result = await receive_customer_message(session, rt, msg)
        assert result.group_id is not None
        last = await session.scalar(
            select(Message).where(Message.group_id == result.group_id).order_by(Message.id.desc()).limit(1)
        )
        assert last is not None
        return result.bot_message_id, result.case_id, last.body


async def test_chinese_question_gets_chinese_answer_and_english_gets_english(rt: Runtime) -> None:
    await _ready(rt)
    bot_id, case_id, body = await _say(rt, "zh", "多久需要做一次保养？", "zh-CN")
    assert bot_id is not None and case_id is None and "10,000 公里" in body
    bot_id, case_id, body = await _say(rt, "en", "How often do I need to service my car?", "en")
    assert bot_id is not None and case_id is None and "10,000 km" in body


async def test_customer_locale_wins_over_question_language(rt: Runtime) -> None:
    await _ready(rt)
    _bot_id, _case, body = await _say(rt, "mixed", "How often should the car be serviced?", "zh-CN")
    assert "公里" in body


async def test_below_threshold_a_person_is_promised_and_a_case_exists(rt: Runtime) -> None:
    await _ready(rt)
    bot_id, case_id, body = await _say(rt, "u1", "我上周在你们店里落下了一把黑色雨伞，能帮我找找吗", "zh-CN")
    assert bot_id is None and case_id is not None
    assert "回复您" in body or "转接" in body


async def test_complaints_are_never_auto_answered(rt: Runtime) -> None:
    await _ready(rt)
    for n, text in enumerate(
        [
            "我要投诉，你们的保养太差了，多久做一次保养都说不清",
            "I want to complain: how often should I service the car, nobody could tell me!",
        ]
    ):
        bot_id, case_id, _ = await _say(rt, f"c{n}", text, "zh-CN" if n == 0 else "en")
        assert bot_id is None and case_id is not None
        async with rt.maker() as session:
            case = await session.get(Case, case_id)
            assert case is not None and case.category == "complaint" and case.priority in ("high", "urgent")


async def test_not_helpful_opens_a_case(rt: Runtime) -> None:
    await _ready(rt)
    bot_id, _, _ = await _say(rt, "nh", "胎压多少合适", "zh-CN")
    assert bot_id is not None
    async with rt.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.display_name == "nh"))
        assert customer is not None
        result = await buttons.press_button(
            session, rt, customer=customer, message_id=bot_id, button="not_helpful"
        )
    assert result.action == "case_opened" and result.case_id is not None
    async with rt.maker() as session:
        case = await session.get(Case, result.case_id)
        bot_msg = await session.get(Message, bot_id)
        assert case is not None and case.category == "service" and "not helpful" in case.routing_reason
        assert bot_msg is not None and bot_msg.meta["feedback"] == "not_helpful"


async def test_asking_again_soon_offers_a_person(rt: Runtime) -> None:
    await _ready(rt)
    await _say(rt, "again", "胎压多少合适？", "zh-CN", 1)
    rt.clock.advance(minutes=2)  # type: ignore[attr-defined]
    bot_id, _, body = await _say(rt, "again", "胎压报警了怎么办", "zh-CN", 2)
    assert bot_id is not None and "转人工" in body


async def test_an_edited_entry_is_matched_by_every_process(settings: Settings, rt: Runtime) -> None:
    """Two runtimes share the database and the Redis bus; an edit in one rebuilds the other's index."""
    url = need(REDIS_URL, "BUTLER_TEST_REDIS_URL")
    from bot.factory import build_runtime, close_runtime

    await _ready(rt)
    a = build_runtime(settings.model_copy(update={"redis_url": url}), clock=rt.clock)
    b = build_runtime(settings.model_copy(update={"redis_url": url}), clock=rt.clock)
    try:
        for r in (a, b):
            assert isinstance(r.answerer, KnowledgeAnswerer)
            await r.answerer.reload(r.maker)
        stop = asyncio.Event()
        assert isinstance(b.answerer, KnowledgeAnswerer)
        follower = asyncio.create_task(b.answerer.follow_changes(b.maker, b.bus, stop))
        await asyncio.sleep(0.3)
        version = b.answerer.version
        question = "展厅里的咖啡机是什么牌子的"
        assert b.answerer.answer(question, locale="zh-CN") is None
        async with a.transaction() as session:
            await knowledge_service.save_entry(
                session,
                topic="showroom.coffee",
                category="general",
                locale="zh-CN",
                questions=[question, "展厅咖啡用的什么豆子", "店里的咖啡好喝吗"],
                answer="我们用的是云南保山小粒咖啡。",
                now=rt.clock.now(),
            )
        for _ in range(100):
            if b.answerer.version > version:
                break
            await asyncio.sleep(0.05)
        answer = b.answerer.answer(question, locale="zh-CN")
        assert answer is not None and answer.topic == "showroom.coffee"
        follower.cancel()
    finally:
        await close_runtime(a)
        await close_runtime(b)
    async with rt.maker() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0


async def test_one_consultation_gives_the_answer_and_the_routing_hint(rt: Runtime) -> None:
    """consult = answer + the best match (whatever its confidence), with the entry's category."""
    await _ready(rt)
    answerer = rt.answerer
    assert isinstance(answerer, KnowledgeAnswerer)
    sure = "How often do I need to service my car?"
    auto, best = answerer.consult(sure, locale="en")
    assert auto is not None and auto == answerer.answer(sure, locale="en") and best == auto
    assert best.category == "service"
    unsure = "我上周在你们店里落下了一把黑色雨伞，能帮我找找吗"
    auto, best = answerer.consult(unsure, locale="zh-CN")
    assert auto is None and answerer.answer(unsure, locale="zh-CN") is None
    top = answerer.suggest(unsure, locale="zh-CN", k=1)
    assert best is not None and [best] == top  # the near miss still hints at a category
    assert answerer.consult("   ", locale="en") == (None, None)
