"""Routing of requests that a person must handle: category (who) and priority (how fast).

Rules, in order:

1. Safety words (brakes failed, smoke, fire, an accident with someone hurt ...) make the request
   urgent. Safety requests go to service unless they are also complaints.
2. Complaints (anger, "投诉", "complain", "差评", "骗", "退钱", "again broken", "third time", two or more
   recent failed repairs) go to the complaint category at high priority (urgent when also unsafe).
   Complaints are never auto-answered: the engine checks :func:`is_complaint` before the FAQ.
3. Otherwise weighted keywords in both languages vote for factory (recall, OTA, software, battery
   degradation), sales (buying, price, test drive, loan, insurance, trade-in) or service
   (maintenance, repair, parts, warning lights, tyres); the category of the best FAQ match, when the
   engine passes one as ``kb_hint``, adds a vote. No vote at all: general.

The reason string (English) lists what decided, for staff: ``"keywords: 刹车, 异响 -> service"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.tokenize import normalize

PRIORITIES = ("low", "normal", "high", "urgent")
ROUTED_CATEGORIES = ("sales", "service", "factory", "complaint", "general")


@dataclass(frozen=True)
class RoutingDecision:
    category: str
    priority: str
    reason: str


# A rule: (label shown to staff, compiled pattern, weight).
_Rule = tuple[str, re.Pattern[str], float]


def _zh(*words: str, weight: float = 1.0) -> list[_Rule]:
    return [(w, re.compile(re.escape(w)), weight) for w in words]


def _en(*patterns: str, weight: float = 1.0) -> list[_Rule]:
    """English patterns match whole words; the label is the pattern with regex syntax stripped."""
    out: list[_Rule] = []
    for p in patterns:
        label = re.sub(r"\(\?:([^|)]*)[^)]*\)\??|[\\?]|\[[^\]]*\]", r"\1", p)
        out.append((label, re.compile(r"(?<![a-z0-9])" + p + r"(?![a-z0-9])"), weight))
    return out


SAFETY_RULES: list[_Rule] = [
    *_zh(
        "刹车失灵",
        "刹不住",
        "刹车没反应",
        "制动失灵",
        "冒烟",
        "着火",
        "起火",
        "自燃",
        "失火",
        "爆炸",
        "方向盘失灵",
        "转向失灵",
        "安全气囊弹",
        "气囊弹出",
        "高速上熄火",
        "突然熄火",
        "漏电",
        "电池鼓包",
    ),
    *_en(
        r"brakes? (?:failed|failure|fail|fails|not working|stopped working|gone|don'?t work|do not work)",
        r"(?:no|lost) brakes?",
        r"can'?t stop",
        r"cannot stop",
        r"smoke",
        r"smoking",
        r"fire",
        r"on fire",
        r"flames?",
        r"burning",
        r"explod(?:ed|ing|e)",
        r"steering (?:failed|failure|locked)",
        r"airbags? (?:deployed|went off)",
        r"stalled on the (?:highway|motorway)",
        r"electric shock",
    ),
]
# An accident is urgent when someone is hurt.
ACCIDENT_RULES: list[_Rule] = [
    *_zh("事故", "车祸", "撞车", "撞了", "追尾"),
    *_en(r"accident", r"crash(?:ed)?", r"collision", r"hit by"),
]
INJURY_RULES: list[_Rule] = [
    *_zh("受伤", "伤了", "流血", "救护车", "120", "人伤", "伤者", "昏迷"),
    *_en(r"injur(?:ed|y|ies)", r"hurt", r"bleeding", r"ambulance", r"wounded", r"unconscious"),
]

COMPLAINT_RULES: list[_Rule] = [
    *_zh(
        "投诉",
        "差评",
        "骗",
        "退钱",
        "又坏了",
        "又坏",
        "又出问题",
        "还是没修好",
        "没修好",
        "修不好",
        "第三次",
        "第四次",
        "第五次",
        "好几次",
        "三番五次",
        "再次返修",
        "反复",
        "太差",
        "太烂",
        "垃圾",
        "气死",
        "生气",
        "愤怒",
        "不满",
        "坑人",
        "忽悠",
        "欺骗",
        "维权",
        "12315",
        "曝光",
        "律师",
        "起诉",
        "赔偿",
        "给个说法",
        "说法",
        "什么态度",
        "态度差",
        "没人管",
        "没人理",
        "失望",
        "恶心",
        "无语",
    ),
    *_en(
        r"complain(?:t|ts|ed|ing)?",
        r"scam(?:med)?",
        r"cheat(?:ed|ing)?",
        r"ripped off",
        r"rip-?off",
        r"lied",
        r"liars?",
        r"fraud",
        r"money back",
        r"refund my money",
        r"want (?:a|my) refund",
        r"broke(?:n)? (?:down )?again",
        r"again broken",
        r"(?:third|fourth|fifth|3rd|4th|5th) time",
        r"still (?:not|isn'?t|hasn'?t been) (?:fixed|repaired|working)",
        r"not fixed yet",
        r"terrible",
        r"worst",
        r"awful",
        r"horrible",
        r"unacceptable",
        r"ridiculous",
        r"disgusted",
        r"disgusting",
        r"furious",
        r"angry",
        r"outraged",
        r"fed up",
        r"sick of",
        r"useless",
        r"lawyer",
        r"sue",
        r"bad review",
        r"nobody (?:answers|cares|replied|responded)",
        r"disappointed",
    ),
]

CATEGORY_RULES: dict[str, list[_Rule]] = {
    "factory": [
        *_zh(
            "召回",
            "OTA",
            "远程升级",
            "系统升级",
            "升级失败",
            "软件",
            "固件",
            "车机",
            "系统",
            "bug",
            "死机",
            "电池衰减",
            "衰减",
            "续航下降",
            "续航缩水",
            "掉电快",
            "掉电",
            "续航",
            "电池健康",
            weight=1.5,
        ),
        *_en(
            r"recalls?",
            r"ota",
            r"over[- ]the[- ]air",
            r"software",
            r"firmware",
            r"updates?",
            r"upgrades?",
            r"infotainment",
            r"bugs?",
            r"glitch(?:es)?",
            r"froze",
            r"freez(?:es|ing)",
            r"battery degradation",
            r"degrad(?:ed|ation|ing)",
            r"range (?:drop(?:s|ped)?|loss|lost)",
            r"losing range",
            r"battery health",
            r"range",
            weight=1.5,
        ),
    ],
    "sales": [
        *_zh(
            "买车",
            "购车",
            "购买",
            "新车",
            "车价",
            "价格",
            "报价",
            "优惠",
            "折扣",
            "一口价",
            "落地价",
            "试驾",
            "贷款",
            "车贷",
            "分期",
            "首付",
            "利息",
            "利率",
            "免息",
            "金融",
            "保险",
            "续保",
            "车险",
            "置换",
            "二手车",
            "估价",
            "定金",
            "订金",
            "订车",
            "下单",
            "提车",
            "交车",
            "交付",
            "上牌",
            "牌照",
            "配置",
            "选车",
            "库存",
            "现车",
        ),
        *_en(
            r"buy(?:ing)?",
            r"purchas(?:e|ing)",
            r"new car",
            r"prices?",
            r"quotes?",
            r"discounts?",
            r"deals?",
            r"offers?",
            r"test[- ]?drives?",
            r"loans?",
            r"financ(?:e|ing)",
            r"instal(?:l)?ments?",
            r"down payment",
            r"interest",
            r"apr",
            r"lease",
            r"leasing",
            r"insurance",
            r"renew(?:al)?",
            r"trade[- ]?in",
            r"used cars?",
            r"valuation",
            r"deposit",
            r"order(?:ed|ing)?",
            r"delivery date",
            r"when (?:will|can) i get my (?:new )?car",
            r"registration",
            r"plates?",
            r"showroom",
            r"in stock",
            r"trim",
            r"new (?:model|car|suv|sedan|ev|[a-z]\d)",
            r"how much is (?:the|a) new",
        ),
    ],
    "service": [
        *_zh(
            "保养",
            "首保",
            "维修",
            "修理",
            "修车",
            "返修",
            "异响",
            "刹车",
            "刹车片",
            "配件",
            "零件",
            "原厂",
            "故障灯",
            "警告灯",
            "报警灯",
            "亮灯",
            "轮胎",
            "胎压",
            "换胎",
            "补胎",
            "机油",
            "电瓶",
            "搭电",
            "打不着",
            "启动不了",
            "救援",
            "拖车",
            "漏油",
            "漏水",
            "抖动",
            "跑偏",
            "空调",
            "质保",
            "保修",
            "索赔",
            "钣金",
            "喷漆",
            "上门",
            "预约",
            "工时",
            "充电桩",
            "充电",
            "钥匙",
            "雨刮",
            "玻璃",
            "车灯",
            "发动机",
            "变速箱",
            "底盘",
            "噪音",
            "故障",
            "坏了",
            "问题",
            "事故",
            "理赔",
            "出险",
            "定损",
            "剐蹭",
        ),
        *_en(
            r"maintenance",
            r"servic(?:e|ing)",
            r"repairs?",
            r"repaired",
            r"fix(?:ed|ing)?",
            r"noises?",
            r"squeak(?:s|ing)?",
            r"rattl(?:e|es|ing)",
            r"brakes?",
            r"brake pads?",
            r"parts?",
            r"spare parts?",
            r"warning lights?",
            r"check engine",
            r"engine light",
            r"dashboard light",
            r"tyres?",
            r"tires?",
            r"flat",
            r"puncture",
            r"tire pressure",
            r"oil",
            r"oil change",
            r"battery",
            r"jump ?start",
            r"won'?t start",
            r"doesn'?t start",
            r"roadside",
            r"tow(?:ing)?",
            r"leak(?:s|ing)?",
            r"vibrat(?:es|ing|ion)",
            r"air ?con(?:ditioning)?",
            r"a/?c",
            r"warranty",
            r"body ?shop",
            r"dent",
            r"scratch(?:es)?",
            r"charger",
            r"charging",
            r"key",
            r"wipers?",
            r"windshield",
            r"headlights?",
            r"engine",
            r"gearbox",
            r"transmission",
            r"broken",
            r"problem",
            r"issue",
            r"fault",
            r"accident",
            r"claims?",
        ),
    ],
}
# Words that only count together with another signal word (too generic on their own).
_GENERIC = {
    "问题",
    "系统",
    "range",
    "problem",
    "issue",
    "interest",
    "offers",
    "offer",
    "deal",
    "deals",
    "key",
    "plates",
    "plate",
    "order",
    "ordered",
    "ordering",
    "预约",
    "上门",
    "续航",
}


def _hits(rules: list[_Rule], text: str) -> list[tuple[str, float]]:
    """(matched words, weight) of every rule that matches; a match inside a longer one is dropped."""
    found: list[tuple[str, float, int, int]] = []
    for _label, pattern, w in rules:
        m = pattern.search(text)
        if m:
            found.append((m.group(0), w, m.start(), m.end()))
    out: list[tuple[str, float]] = []
    found.sort(key=lambda f: (f[2], -f[3]))
    for word, w, a, b in found:
        inside = any((a2 <= a and b <= b2) and (b2 - a2) > (b - a) for _, _, a2, b2 in found)
        if not inside and word not in (x for x, _ in out):
            out.append((word, w))
    return out


def _prepare(text: str) -> str:
    return " ".join(normalize(text).split())


def _is_angry_style(raw: str) -> bool:
    """Shouting: three or more exclamation marks, or most Latin letters in capitals (long enough)."""
    if raw.count("!") + raw.count("！") >= 3:
        return True
    letters = [c for c in raw if c.isascii() and c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7


def complaint_signals(text: str, *, recent_failed_repairs: int = 0) -> list[str]:
    """What makes the text a complaint (empty when it is not one)."""
    norm = _prepare(text)
    found = [label for label, _ in _hits(COMPLAINT_RULES, norm)]
    if _is_angry_style(text):
        found.append("shouting")
    if recent_failed_repairs >= 2:
        found.append(f"{recent_failed_repairs} failed repairs")
    return found


def is_complaint(text: str, *, recent_failed_repairs: int = 0) -> bool:
    """True for complaints; they are never auto-answered."""
    return bool(complaint_signals(text, recent_failed_repairs=recent_failed_repairs))


def safety_signals(text: str) -> list[str]:
    """Safety words that make a request urgent."""
    norm = _prepare(text)
    found = [label for label, _ in _hits(SAFETY_RULES, norm)]
    accident = [label for label, _ in _hits(ACCIDENT_RULES, norm)]
    injury = [label for label, _ in _hits(INJURY_RULES, norm)]
    if accident and injury:
        found.extend(accident + injury)
    return found


def route_request(
    text: str, *, locale: str, kb_hint: str | None = None, recent_case_count: int = 0
) -> RoutingDecision:
    """Category and priority for a request a person must handle, with a reason for staff."""
    norm = _prepare(text)
    safety = safety_signals(text)
    complaint = complaint_signals(text)
    reasons: list[str] = []

    if complaint:
        category = "complaint"
        priority = "urgent" if safety else "high"
        reasons.append(f"complaint: {', '.join(complaint)}")
        if safety:
            reasons.append(f"safety: {', '.join(safety)} -> urgent")
    else:
        votes: dict[str, float] = {}
        words: dict[str, list[str]] = {}
        for cat, rules in CATEGORY_RULES.items():
            hits = _hits(rules, norm)
            strong = [h for h in hits if h[0] not in _GENERIC]
            if not strong and len(hits) < 2:
                continue
            votes[cat] = sum(w for _, w in hits)
            words[cat] = [label for label, _ in hits]
        if kb_hint in ROUTED_CATEGORIES and kb_hint != "complaint":
            votes[kb_hint] = votes.get(kb_hint, 0.0) + 1.0
        if safety:
            category = "service"
            priority = "urgent"
            reasons.append(f"safety: {', '.join(safety)} -> urgent")
        elif votes:
            # Highest vote wins; ties go to service, then factory, then sales (the order owners expect).
            tie_order = {"service": 0, "factory": 1, "sales": 2, "general": 3}
            category = min(votes, key=lambda c: (-votes[c], tie_order.get(c, 9)))
            priority = "normal"
        else:
            category = "general"
            priority = "normal" if len(norm) > 12 else "low"
        if not safety:
            if category in words:
                reasons.append(f"keywords: {', '.join(words[category])} -> {category}")
            if kb_hint and kb_hint == category:
                reasons.append(f"closest FAQ is {kb_hint}")
            if category == "general" and not reasons:
                reasons.append("no routing keywords -> general")
    if recent_case_count >= 3 and PRIORITIES.index(priority) < PRIORITIES.index("high"):
        priority = "high"
        reasons.append(f"{recent_case_count} recent cases -> high")
    elif recent_case_count >= 1 and priority == "low":
        priority = "normal"
    del locale  # both languages share one rule set; kept in the signature for the engine
    return RoutingDecision(category=category, priority=priority, reason="; ".join(reasons))
