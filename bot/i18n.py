"""Customer-facing texts in zh-CN and en."""

from __future__ import annotations

from typing import Any

LOCALES = ("zh-CN", "en")

TEXTS: dict[str, dict[str, str]] = {
    "role.butler": {"zh-CN": "专属管家", "en": "Butler"},
    "role.sales": {"zh-CN": "销售顾问", "en": "Sales"},
    "role.service": {"zh-CN": "服务技师", "en": "Service"},
    "role.factory": {"zh-CN": "厂家工程师", "en": "Factory engineer"},
    "role.lead": {"zh-CN": "组长", "en": "Team lead"},
    "role.manager": {"zh-CN": "经理", "en": "Manager"},
    "role.admin": {"zh-CN": "管理员", "en": "Admin"},
    "welcome": {
        "zh-CN": "您好，{name}！欢迎来到 Demo Motors 专属管家服务。您的管家团队已组建：{team}。"
        "有任何问题直接发消息即可，7x24 小时在线。",
        "en": "Hello {name}, welcome to Demo Motors butler service. Your butler team is ready: {team}. "
        "Just write here any time, 7x24.",
    },
    "case.assigned": {
        "zh-CN": "已为您转接 {name}（{role}），将尽快回复您。",
        "en": "{name} ({role}) will get back to you shortly.",
    },
    "case.assigned_by": {
        "zh-CN": "已为您转接 {name}（{role}），将在 {within}内回复您。",
        "en": "{name} ({role}) will reply within {within}.",
    },
    "case.unassigned": {
        "zh-CN": "您的问题已记录，我们的团队会尽快回复您。",
        "en": "Your request is recorded; our team will get back to you shortly.",
    },
    "case.resolved": {
        "zh-CN": "您的问题已处理完毕。请为本次服务打分：",
        "en": "Your request has been resolved. Please rate our service:",
    },
    "case.rated": {"zh-CN": "感谢您的评价！", "en": "Thank you for your rating!"},
    "case.escalated": {
        "zh-CN": "抱歉让您久等，您的问题已升级至 {name}（{role}）优先处理。",
        "en": "Sorry for the wait: your request has been escalated to {name} ({role}).",
    },
    "bot.answer_footer": {
        "zh-CN": "这个回答有帮助吗？",
        "en": "Was this helpful?",
    },
    "bot.handoff": {
        "zh-CN": "这个问题我为您转给专人处理。",
        "en": "I'll pass this to a person on your team.",
    },
    "bot.offer_person": {
        "zh-CN": "看起来还没有解决您的问题，要为您转人工吗？",
        "en": "It looks like that did not settle it. Shall I connect you with a person?",
    },
    "button.helpful": {"zh-CN": "有帮助", "en": "Helpful"},
    "button.not_helpful": {"zh-CN": "没帮助", "en": "Not helpful"},
    "button.person": {"zh-CN": "转人工", "en": "Talk to a person"},
    "channel.blocked": {
        "zh-CN": "客户已屏蔽机器人，Telegram 消息无法送达。",
        "en": "The customer blocked the bot; Telegram messages cannot be delivered.",
    },
    "minutes": {"zh-CN": "{n} 分钟", "en": "{n} minutes"},
    "hours": {"zh-CN": "{n} 小时", "en": "{n} hours"},
}


def normalize_locale(value: str | None, default: str = "zh-CN") -> str:
    """Map language codes (zh, zh-hans, en-US ...) to a supported locale."""
    if not value:
        return default
    low = value.lower()
    if low.startswith("zh"):
        return "zh-CN"
    if low.startswith("en"):
        return "en"
    return default


def t(key: str, locale: str, **params: Any) -> str:
    """The text for key in locale (English when missing), formatted with params."""
    entry = TEXTS[key]
    return entry.get(normalize_locale(locale), entry["en"]).format(**params)


def role_name(role: str, locale: str) -> str:
    """A role's display name."""
    key = f"role.{role}"
    return t(key, locale) if key in TEXTS else role


def duration_text(minutes: float, locale: str) -> str:
    """A short human duration: minutes below two hours, else hours."""
    if minutes < 120:
        return t("minutes", locale, n=max(1, round(minutes)))
    return t("hours", locale, n=round(minutes / 60))
