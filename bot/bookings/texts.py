"""Customer-facing booking texts in zh-CN and en."""

from __future__ import annotations

from typing import Any

from bot.i18n import normalize_locale

TEXTS: dict[str, dict[str, str]] = {
    "kind.test_drive": {"zh-CN": "预约试驾", "en": "Test drive"},
    "kind.service": {"zh-CN": "预约保养维修", "en": "Service appointment"},
    "kind.onsite_repair": {"zh-CN": "上门维修", "en": "On-site repair"},
    "kind.parts_delivery": {"zh-CN": "配件配送", "en": "Parts delivery"},
    "kind.vehicle": {"zh-CN": "登记车辆", "en": "Vehicle registration"},
    "ask.model": {"zh-CN": "您想试驾哪款车型？", "en": "Which model would you like to drive?"},
    "ask.date": {"zh-CN": "请选择日期：", "en": "Pick a day:"},
    "ask.slot": {"zh-CN": "请选择时间段：", "en": "Pick a time:"},
    "ask.place": {"zh-CN": "在哪里试驾？", "en": "Where shall we meet?"},
    "ask.address": {
        "zh-CN": "请输入地址，或发送定位：",
        "en": "Type the address, or share a location:",
    },
    "ask.vehicle": {"zh-CN": "是哪辆车？", "en": "Which car is it about?"},
    "ask.service_type": {"zh-CN": "需要什么服务？", "en": "What does the car need?"},
    "ask.notes": {
        "zh-CN": "还有什么要告诉技师的吗？直接输入，或点「跳过」。",
        "en": "Anything the technician should know? Type it, or press Skip.",
    },
    "ask.problem": {"zh-CN": "请描述一下问题：", "en": "Please describe the problem:"},
    "ask.photos": {
        "zh-CN": "可以发几张照片帮助技师判断，发完点「完成」（没有照片也可以直接点）。",
        "en": "Send a few photos if they help, then press Done (or press it right away).",
    },
    "ask.part": {"zh-CN": "需要哪个配件？", "en": "Which part do you need?"},
    "ask.vin": {
        "zh-CN": "请输入车架号（VIN，17 位，行驶证上可以找到）：",
        "en": "Type the VIN (17 characters, printed on the registration card):",
    },
    "ask.vehicle_model": {"zh-CN": "是哪款车型？", "en": "Which model is it?"},
    "ask.confirm": {"zh-CN": "请确认您的预约：\n{summary}", "en": "Please confirm:\n{summary}"},
    "opt.showroom": {"zh-CN": "门店试驾", "en": "At the showroom"},
    "opt.home": {"zh-CN": "上门试驾", "en": "At my place"},
    "opt.maintenance": {"zh-CN": "常规保养", "en": "Maintenance"},
    "opt.repair": {"zh-CN": "故障维修", "en": "Repair"},
    "opt.inspection": {"zh-CN": "检测", "en": "Inspection"},
    "opt.tyres": {"zh-CN": "轮胎", "en": "Tyres"},
    "opt.none": {"zh-CN": "未登记的车", "en": "A car not registered here"},
    "opt.confirm": {"zh-CN": "✅ 确认", "en": "✅ Confirm"},
    "opt.cancel": {"zh-CN": "取消", "en": "Cancel"},
    "opt.skip": {"zh-CN": "跳过", "en": "Skip"},
    "opt.done": {"zh-CN": "完成", "en": "Done"},
    "field.model": {"zh-CN": "车型", "en": "Model"},
    "field.date": {"zh-CN": "日期", "en": "Day"},
    "field.slot": {"zh-CN": "时间", "en": "Time"},
    "field.place": {"zh-CN": "地点", "en": "Place"},
    "field.address": {"zh-CN": "地址", "en": "Address"},
    "field.vehicle": {"zh-CN": "车辆", "en": "Car"},
    "field.service_type": {"zh-CN": "服务", "en": "Service"},
    "field.notes": {"zh-CN": "备注", "en": "Notes"},
    "field.problem": {"zh-CN": "问题", "en": "Problem"},
    "field.photos": {"zh-CN": "照片", "en": "Photos"},
    "field.part": {"zh-CN": "配件", "en": "Part"},
    "field.vin": {"zh-CN": "车架号", "en": "VIN"},
    "field.vehicle_model": {"zh-CN": "车型", "en": "Model"},
    "location": {"zh-CN": "定位 {lat:.5f}, {lon:.5f}", "en": "location {lat:.5f}, {lon:.5f}"},
    "booked": {
        "zh-CN": "已提交：{kind}（单号 #{case_id}）。您的团队会尽快与您确认。",
        "en": "Sent: {kind} (case #{case_id}). Your team will confirm it with you shortly.",
    },
    "vehicle.saved": {
        "zh-CN": "已登记您的车辆：{model}，车架号 {vin}。",
        "en": "Your car is registered: {model}, VIN {vin}.",
    },
    "cancelled": {"zh-CN": "已取消。", "en": "Cancelled."},
    "photo.added": {
        "zh-CN": "已收到 {n} 张照片。继续发送，或点「完成」。",
        "en": "{n} photo(s) received. Send more or press Done.",
    },
    "stale": {"zh-CN": "这一步已经完成了。", "en": "That step is already done."},
    "invalid.text": {
        "zh-CN": "请输入 2 到 500 个字。",
        "en": "Please type between 2 and 500 characters.",
    },
    "invalid.option": {"zh-CN": "请点选下面的按钮。", "en": "Please pick one of the buttons."},
    "invalid.photo": {"zh-CN": "请发送照片，或点「完成」。", "en": "Send a photo, or press Done."},
    "invalid.vin.length": {
        "zh-CN": "车架号是 17 位，请再检查一下。",
        "en": "A VIN has 17 characters; please check it.",
    },
    "invalid.vin.letters": {
        "zh-CN": "车架号里不会有字母 I、O、Q，请再检查一下。",
        "en": "A VIN never contains I, O or Q; please check it.",
    },
    "invalid.vin.characters": {
        "zh-CN": "车架号只包含字母和数字。",
        "en": "A VIN has only letters and digits.",
    },
    "invalid.vin.check_digit": {
        "zh-CN": "车架号的校验位（第 9 位）不对，请再检查一下。",
        "en": "The VIN's check digit (9th character) does not match; please check it.",
    },
    "invalid.vin.taken": {
        "zh-CN": "这个车架号已经登记过了。如有疑问请联系您的管家。",
        "en": "That VIN is already registered. Ask your butler if this looks wrong.",
    },
}

WEEKDAYS = {
    "zh-CN": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def tx(key: str, locale: str, **params: Any) -> str:
    """A booking text in the locale (English when missing)."""
    entry = TEXTS[key]
    return entry.get(normalize_locale(locale), entry["en"]).format(**params)
