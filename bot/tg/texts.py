"""Texts the bot writes into staff topics and staff chats (zh-CN and en, staff read both)."""

from __future__ import annotations

from typing import Any

from bot.i18n import normalize_locale

TEXTS: dict[str, dict[str, str]] = {
    "header": {
        "zh-CN": "🧾 客户：{customer}{phone}\n🚗 车辆：{vehicles}\n👥 管家团队：\n{team}\n\n"
        "在本话题中：直接回复 = 发给客户；/note 或 #note 开头 = 内部备注；"
        "/resolve 结案；/invite <角色> 邀请；/transfer <用户名> 转交。",
        "en": "🧾 Customer: {customer}{phone}\n🚗 Vehicle: {vehicles}\n👥 Butler team:\n{team}\n\n"
        "In this topic: a plain message goes to the customer; /note or #note = internal note; "
        "/resolve closes the case; /invite <role>; /transfer <username>.",
    },
    "no_vehicle": {"zh-CN": "未登记", "en": "not registered"},
    "gap": {"zh-CN": "（空缺：{roles}）", "en": "(unfilled: {roles})"},
    "from_customer": {"zh-CN": "👤 {name}", "en": "👤 {name}"},
    "from_bot": {"zh-CN": "🤖 机器人 → 客户", "en": "🤖 Bot → customer"},
    "from_staff": {"zh-CN": "💬 {signature}（控制台）", "en": "💬 {signature} (console)"},
    "edited": {"zh-CN": "（已编辑）", "en": "(edited)"},
    "location": {"zh-CN": "📍 位置", "en": "📍 Location"},
    "notify": {"zh-CN": "🔔 {text}", "en": "🔔 {text}"},
    "resolved": {
        "zh-CN": "✅ 案件 #{case_id} 已由 {name} 结案，已请客户评价。",
        "en": "✅ Case #{case_id} resolved by {name}; the customer was asked for a rating.",
    },
    "invited": {"zh-CN": "➕ {name}（{role}）已加入团队。", "en": "➕ {name} ({role}) joined the team."},
    "transferred": {
        "zh-CN": "↪️ 案件 #{case_id} 已转交给 {name}。",
        "en": "↪️ Case #{case_id} transferred to {name}.",
    },
    "note_saved": {
        "zh-CN": "📝 内部备注已保存（客户看不到）。",
        "en": "📝 Internal note saved (not sent to the customer).",
    },
    "unlinked": {
        "zh-CN": "⚠️ 您的 Telegram 账号还没有关联员工账号，消息未转发。请在控制台打开关联链接。",
        "en": "⚠️ Your Telegram account is not linked to a staff account, so nothing was sent. "
        "Open the link from the console first.",
    },
    "no_case": {"zh-CN": "当前没有进行中的案件。", "en": "There is no open case."},
    "refused": {"zh-CN": "⚠️ 未执行：{reason}", "en": "⚠️ Not done: {reason}"},
    "usage.invite": {
        "zh-CN": "用法：/invite <butler|sales|service|factory>",
        "en": "Usage: /invite <butler|sales|service|factory>",
    },
    "usage.transfer": {"zh-CN": "用法：/transfer <员工用户名>", "en": "Usage: /transfer <staff username>"},
    "usage.note": {"zh-CN": "用法：/note <内容>", "en": "Usage: /note <text>"},
    "linked": {
        "zh-CN": "✅ 已关联：{name}（{role}）。您在员工群话题里的消息会以您的名义发给客户。",
        "en": "✅ Linked: {name} ({role}). Your messages in staff topics now reach customers in your name.",
    },
    "link_invalid": {
        "zh-CN": "这个关联链接无效或已过期，请在控制台重新生成。",
        "en": "This link is invalid or expired; create a new one in the console.",
    },
    "reactivated": {"zh-CN": "客户重新启用了机器人。", "en": "The customer unblocked the bot again."},
}


def st(key: str, locale: str, **params: Any) -> str:
    """A staff-side text in the locale (English when missing)."""
    entry = TEXTS[key]
    return entry.get(normalize_locale(locale), entry["en"]).format(**params)
