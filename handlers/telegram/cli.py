"""`butler telegram check`: is the bot reachable, and is the staff supergroup set up for topics?"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import typer
from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError

from bot.settings import Settings
from handlers.telegram.application import api_urls

app = typer.Typer(help="Telegram channel setup.", no_args_is_help=True)


@dataclass(frozen=True)
class Finding:
    """One check: ok or not, what we saw, and what to do about it."""

    ok: bool
    what: str
    fix: str = ""


async def run_checks(settings: Settings) -> list[Finding]:
    """getMe, then getChat(staff chat) and getChatMember(bot) on the staff supergroup."""
    if not settings.telegram_token:
        return [Finding(False, "no bot token", "create a bot with @BotFather and set BUTLER_TELEGRAM_TOKEN")]
    base_url, base_file_url = api_urls(settings)
    bot = Bot(settings.telegram_token, base_url=base_url, base_file_url=base_file_url)
    try:
        await bot.initialize()
    except InvalidToken:
        return [
            Finding(False, "Telegram rejected the token", "copy the token again from @BotFather (/token)")
        ]
    except TelegramError as exc:
        return [
            Finding(
                False,
                f"cannot reach {settings.telegram_api_base_url} ({exc})",
                "check the network or BUTLER_TELEGRAM_API_BASE_URL",
            )
        ]
    try:
        found = [Finding(True, f"bot @{bot.username} (id {bot.id}) answers getMe")]
        found += await _staff_chat(bot, settings)
        return found
    finally:
        await bot.shutdown()


async def _staff_chat(bot: Bot, settings: Settings) -> list[Finding]:
    """The staff supergroup: a forum, with the bot as an admin that may manage topics."""
    chat_id = settings.telegram_staff_chat_id
    name = f"@{bot.username}"
    if chat_id is None:
        return [
            Finding(
                False,
                "no staff supergroup configured",
                "add the bot to your staff group, then set BUTLER_TELEGRAM_STAFF_CHAT_ID to the group's id "
                "(a negative number like -1001234567890; forward a group message to @userinfobot to see it)",
            )
        ]
    try:
        chat = await bot.get_chat(chat_id)
    except (BadRequest, Forbidden) as exc:
        return [
            Finding(False, f"chat {chat_id} is not visible to the bot ({exc})", f"add {name} to the group")
        ]
    found = [Finding(True, f"staff chat {chat_id} is '{chat.title}' ({chat.type})")]
    if chat.type != "supergroup":
        found.append(
            Finding(
                False,
                "the staff chat is not a supergroup",
                "turn on Topics in the group settings (it upgrades)",
            )
        )
    if not chat.is_forum:
        found.append(Finding(False, "topics are off", "group settings -> Topics -> on"))
    else:
        found.append(Finding(True, "topics are on"))
    member = await bot.get_chat_member(chat_id, bot.id)
    if member.status not in ("administrator", "creator"):
        found.append(
            Finding(False, f"{name} is a {member.status}, not an administrator", f"promote {name} to admin")
        )
    elif member.status == "administrator" and not getattr(member, "can_manage_topics", False):
        found.append(
            Finding(
                False, f"{name} may not manage topics", f"edit {name}'s admin rights: enable 'Manage topics'"
            )
        )
    else:
        found.append(Finding(True, f"{name} is an administrator that can manage topics"))
    return found


@app.command("check")
def check() -> None:
    """Check the bot token and the staff supergroup, and say exactly what to fix."""
    try:
        settings = Settings()
    except Exception as exc:
        typer.secho(f"Configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    findings = asyncio.run(run_checks(settings))
    for item in findings:
        mark, colour = ("OK", "green") if item.ok else ("FIX", "red")
        typer.secho(f"[{mark:>3}] {item.what}", fg=colour)
        if item.fix:
            typer.echo(f"      -> {item.fix}")
    if all(f.ok for f in findings):
        typer.secho("Telegram is ready.", bold=True)
        return
    raise typer.Exit(1)
