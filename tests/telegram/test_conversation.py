"""End to end over polling: greeting and menu in the user's language, /language, /team, /help, phone."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import select

from bot.teams.models import Customer
from tests.botapi import BotApiServer
from tests.live import LiveServer

Butler = Callable[..., AbstractAsyncContextManager[LiveServer]]


async def test_start_greets_in_the_users_language(butler: Butler, botapi: BotApiServer) -> None:
    """zh and en clients get the greeting, the team and the menu in their language."""
    zh = botapi.user(4101, "李雷", language_code="zh-hans")
    en = botapi.user(4102, "Lucy", language_code="en-GB")
    async with butler():
        await zh.send_command("/start")
        await en.send_command("/start")
        [zh_hello] = await zh.wait_for_reply(1)
        [en_hello] = await en.wait_for_reply(1)
    assert zh_hello.text is not None and zh_hello.text.startswith("您好，李雷")
    assert "专属管家" in zh_hello.text and "请选择您需要的服务" in zh_hello.text
    assert en_hello.text is not None and en_hello.text.startswith("Hello Lucy")
    assert "Butler" in en_hello.text and "How can we help?" in en_hello.text
    menu = ["m:ask", "m:test_drive", "m:service", "m:onsite_repair", "m:parts_delivery", "m:team", "m:person"]
    assert zh_hello.buttons == menu and en_hello.buttons == menu


async def test_language_team_help_and_phone(butler: Butler, botapi: BotApiServer) -> None:
    """/language switches, /team lists "Name · Role", /help, and the contact button saves the phone."""
    user = botapi.user(4103, "Wei", language_code="zh-hans")
    async with butler() as live:
        await user.send_command("/language")
        [pick] = await user.wait_for_reply(1)
        assert pick.buttons == ["lang:zh-CN", "lang:en"]
        await (await user.press(pick, "lang:en")).wait_answer()
        [_, switched] = await user.wait_for_reply(2)
        assert switched.text == "Switched to English." and "m:team" in switched.buttons
        await user.send_command("/team")
        [*_, team] = await user.wait_for_reply(3)
        assert team.text is not None and team.text.startswith("Your butler team:\n• ")
        assert "· Butler" in team.text and "· Sales" in team.text and "· Service" in team.text
        await user.send_command("/help")
        [*_, help_text] = await user.wait_for_reply(4)
        assert help_text.text is not None and "/vehicle" in help_text.text
        await user.send_command("/phone")
        [*_, ask] = await user.wait_for_reply(5)
        assert ask.reply_markup is not None and ask.reply_markup["keyboard"][0][0]["request_contact"] is True
        await user.share_contact("+86 138 0000 0000")
        [*_, saved] = await user.wait_for_reply(6)
        async with live.rt.maker() as session:
            customer = await session.scalar(select(Customer))
    assert saved.text == "Saved your phone number +8613800000000."
    assert customer is not None and customer.phone == "+8613800000000" and customer.locale == "en"
