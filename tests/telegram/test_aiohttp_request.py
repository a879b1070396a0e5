"""PTB on our aiohttp transport, against the Bot API test server over HTTP."""

from __future__ import annotations

import socket

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ReplyParameters
from telegram.error import BadRequest, NetworkError, TimedOut

from handlers.telegram.aiohttp_request import AiohttpRequest
from handlers.telegram.application import http_request
from tests.botapi.server import BotApiServer


def _bot(server: BotApiServer, request: AiohttpRequest) -> Bot:
    return Bot(
        server.token, base_url=f"{server.url}/bot", base_file_url=f"{server.url}/file/bot", request=request
    )


async def test_messages_files_and_downloads_go_through(botapi: BotApiServer) -> None:
    botapi.user(2001, "Wang Min", started=True)
    async with _bot(botapi, http_request(pool=4)) as bot:
        sent = await bot.send_message(2001, "你好, Wang")
        assert sent.text == "你好, Wang"
        content = bytes(range(256)) * 40  # binary, not UTF-8: multipart must carry it untouched
        doc = await bot.send_document(2001, InputFile(content, filename="invoice.pdf"), caption="账单")
        assert doc.document is not None and doc.caption == "账单"
        file = await bot.get_file(doc.document.file_id)
        assert bytes(await file.download_as_bytearray()) == content
        with pytest.raises(BadRequest):  # the Bot API's 400 comes back as PTB's error
            await bot.send_message(2001, "")
    assert [s.text for s in botapi.sent(2001)] == ["你好, Wang", "账单"]


async def test_server_errors_and_timeouts_become_ptb_errors(botapi: BotApiServer) -> None:
    botapi.user(2002, "Li Na", started=True)
    async with _bot(botapi, http_request(pool=2, read_timeout=0.3)) as bot:
        botapi.faults.fail_next("sendMessage", status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(2002, "lost")
        botapi.faults.hang_next("sendMessage", 1.0)
        with pytest.raises(TimedOut):
            await bot.send_message(2002, "never sent")
        await bot.send_message(2002, "works again")
    assert "works again" in [s.text for s in botapi.sent(2002)]


async def test_an_unreachable_server_is_a_network_error_and_the_client_restarts() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = http_request(pool=1)
    bot = Bot("1:x", base_url=f"http://127.0.0.1:{port}/bot", request=request)
    for _ in range(2):  # initialize after a shutdown opens a new session
        await request.initialize()
        with pytest.raises(NetworkError, match=r"aiohttp\.ClientConnectorError"):
            await bot.get_me()
        await request.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1/", "GET")


async def test_calls_go_as_json_with_nested_objects(botapi: BotApiServer) -> None:
    botapi.user(2003, "Zhao Lei", started=True)
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("预约保养", callback_data="book")]])
    async with _bot(botapi, http_request(pool=2)) as bot:
        first = await bot.send_message(2003, "您好")
        sent = await bot.send_message(
            2003, "请选择", reply_markup=keyboard, reply_parameters=ReplyParameters(first.message_id)
        )
    assert sent.reply_markup == keyboard
    assert sent.reply_to_message is not None and sent.reply_to_message.message_id == first.message_id
    call = botapi.calls("sendMessage")[-1]
    # A JSON body carries the keyboard as an object; a form would have carried a string of JSON.
    assert call.params["reply_markup"] == keyboard.to_dict()
    assert call.params["text"] == "请选择"
