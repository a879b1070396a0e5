"""Attachments from Telegram messages: file ids plus a local copy within the size limit."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from pathlib import Path
from typing import Any

from telegram import Bot, Message

from bot.errors import InvalidInput
from bot.settings import Settings
from handlers.telegram.texts import size_text

UNSUPPORTED = (
    "sticker",
    "video",
    "video_note",
    "audio",
    "animation",
    "poll",
    "dice",
    "game",
    "venue",
    "story",
    "invoice",
)


class MediaTooLarge(InvalidInput):
    """An attachment above the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__("media.too_large", f"files up to {size_text(limit)} are accepted")
        self.limit = limit


def attachments_of(message: Message) -> list[dict[str, Any]]:
    """The photo (largest size), document, voice note or location of a message."""
    found: list[dict[str, Any]] = []
    if message.photo:
        best = message.photo[-1]
        found.append(
            {
                "type": "photo",
                "file_id": best.file_id,
                "file_unique_id": best.file_unique_id,
                "file_size": best.file_size,
                "width": best.width,
                "height": best.height,
            }
        )
    if message.document:
        doc = message.document
        found.append(
            {
                "type": "document",
                "file_id": doc.file_id,
                "file_unique_id": doc.file_unique_id,
                "file_size": doc.file_size,
                "file_name": doc.file_name,
                "mime_type": doc.mime_type,
            }
        )
    if message.voice:
        voice = message.voice
        found.append(
            {
                "type": "voice",
                "file_id": voice.file_id,
                "file_unique_id": voice.file_unique_id,
                "file_size": voice.file_size,
                "mime_type": voice.mime_type,
            }
        )
    if message.location:
        found.append(
            {
                "type": "location",
                "latitude": message.location.latitude,
                "longitude": message.location.longitude,
            }
        )
    return found


def is_unsupported(message: Message) -> bool:
    """A message with content we do not take (stickers, videos, polls...) and nothing we do."""
    if message.text or message.photo or message.document or message.voice or message.location:
        return False
    return any(getattr(message, name, None) for name in UNSUPPORTED)


async def store_copies(bot: Bot, attachments: list[dict[str, Any]], settings: Settings) -> None:
    """Download each file (refusing ones above the limit) and keep a content-addressed copy."""
    limit = settings.media_max_bytes
    for item in attachments:
        if "file_id" not in item:
            continue
        if item.get("file_size") and int(item["file_size"]) > limit:
            raise MediaTooLarge(limit)
        remote = await bot.get_file(item["file_id"])
        if remote.file_size and remote.file_size > limit:
            raise MediaTooLarge(limit)
        data = bytes(await remote.download_as_bytearray())
        if len(data) > limit:
            raise MediaTooLarge(limit)
        item["path"] = await asyncio.to_thread(_write, Path(settings.media_dir), data, item, remote.file_path)
        item["size"] = len(data)


def _write(root: Path, data: bytes, item: dict[str, Any], remote_path: str | None) -> str:
    """Write bytes under root/<sha[:2]>/<sha><ext> (same content, same file); returns the relative path."""
    digest = hashlib.sha256(data).hexdigest()
    ext = Path(item.get("file_name") or remote_path or "").suffix[:10]
    if not ext and item.get("mime_type"):
        ext = mimetypes.guess_extension(str(item["mime_type"])) or ""
    if not ext and item["type"] == "photo":
        ext = ".jpg"
    relative = Path(digest[:2]) / f"{digest}{ext}"
    target = root / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return relative.as_posix()
