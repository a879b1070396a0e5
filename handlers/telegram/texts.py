"""Customer-facing Telegram texts in zh-CN and en (greeting and team come from bot.i18n)."""

from __future__ import annotations

from typing import Any

from bot.i18n import normalize_locale

TEXTS: dict[str, dict[str, str]] = {
    "menu.title": {"zh-CN": "请选择您需要的服务：", "en": "How can we help?"},
    "menu.ask": {"zh-CN": "💬 咨询问题", "en": "💬 Ask a question"},
    "menu.test_drive": {"zh-CN": "🚗 预约试驾", "en": "🚗 Book a test drive"},
    "menu.service": {"zh-CN": "🔧 预约保养维修", "en": "🔧 Book a service"},
    "menu.onsite_repair": {"zh-CN": "🏠 上门维修", "en": "🏠 On-site repair"},
    "menu.parts_delivery": {"zh-CN": "📦 配件配送", "en": "📦 Parts delivery"},
    "menu.team": {"zh-CN": "👥 我的管家团队", "en": "👥 My butler team"},
    "menu.person": {"zh-CN": "🙋 转人工", "en": "🙋 Talk to a person"},
    "ask": {
        "zh-CN": "请直接输入您的问题，文字、图片、语音、文件或定位都可以。",
        "en": "Type your question; text, photos, voice notes, files and locations all work.",
    },
    "team": {"zh-CN": "您的专属管家团队：\n{team}", "en": "Your butler team:\n{team}"},
    "team.gaps": {
        "zh-CN": "（{roles} 暂时空缺，我们正在安排）",
        "en": "({roles}: being arranged)",
    },
    "help": {
        "zh-CN": "我是您的专属管家助手。\n/menu 服务菜单\n/team 我的管家团队\n/language 切换语言\n"
        "/vehicle 登记车辆\n/phone 留下手机号\n/cancel 取消正在进行的预约\n"
        "直接发消息即可提问，需要时会为您转接团队成员。",
        "en": "I'm your butler assistant.\n/menu services\n/team your butler team\n"
        "/language switch language\n/vehicle register your car\n/phone share your phone number\n"
        "/cancel stop a booking in progress\n"
        "Just write to ask anything; I'll bring in your team when needed.",
    },
    "language.pick": {"zh-CN": "请选择语言 / Choose a language:", "en": "Choose a language / 请选择语言:"},
    "language.set": {"zh-CN": "已切换为中文。", "en": "Switched to English."},
    "phone.ask": {
        "zh-CN": "点下面的按钮把手机号发给我们，方便团队联系您。",
        "en": "Press the button below to share your phone number with your team.",
    },
    "phone.button": {"zh-CN": "📱 发送我的手机号", "en": "📱 Share my phone number"},
    "phone.saved": {"zh-CN": "已保存您的手机号 {phone}。", "en": "Saved your phone number {phone}."},
    "phone.not_own": {
        "zh-CN": "请发送您自己的联系方式（用下面的按钮）。",
        "en": "Please share your own contact (use the button below).",
    },
    "person.open": {
        "zh-CN": "您的团队已经在处理您的问题了，请稍候。",
        "en": "Your team is already on it; they'll be with you shortly.",
    },
    "feedback.thanks": {"zh-CN": "感谢反馈！", "en": "Thanks for the feedback!"},
    "no_booking": {"zh-CN": "当前没有进行中的预约。", "en": "There is no booking in progress."},
    "unsupported": {
        "zh-CN": "抱歉，这种消息我还处理不了。请发送文字、图片、文件、语音或定位。",
        "en": "Sorry, I can't handle that kind of message. "
        "Please send text, photos, files, voice or a location.",
    },
    "error.media.too_large": {
        "zh-CN": "抱歉，文件太大了（上限 {limit}）。请压缩后再发，或直接描述问题。",
        "en": "Sorry, that file is too big (limit {limit}). "
        "Please send a smaller one or describe it in words.",
    },
    "error.message.too_long": {
        "zh-CN": "消息太长了（上限 {limit} 个字），请分几条发送。",
        "en": "That message is too long (limit {limit} characters); please split it up.",
    },
    "error.message.empty": {"zh-CN": "消息是空的。", "en": "That message is empty."},
    "error.phone.invalid": {
        "zh-CN": "这个手机号看起来不对。",
        "en": "That phone number does not look right.",
    },
    "error.generic": {
        "zh-CN": "抱歉，没能完成：{reason}",
        "en": "Sorry, that did not work: {reason}",
    },
    "error.failed": {
        "zh-CN": "抱歉，处理您的消息时出了问题，我们已记录。请稍后再试。",
        "en": "Sorry, something went wrong with that message; we have logged it. Please try again later.",
    },
    "staff.only": {
        "zh-CN": "这是员工关联链接，已处理。",
        "en": "That was a staff link; it has been handled.",
    },
}


def ct(key: str, locale: str, **params: Any) -> str:
    """A customer text in the locale (English when missing)."""
    entry = TEXTS[key]
    return entry.get(normalize_locale(locale), entry["en"]).format(**params)


def size_text(limit: int) -> str:
    """A byte count as people read it (MB or KB)."""
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{max(1, limit // 1024)} KB"
