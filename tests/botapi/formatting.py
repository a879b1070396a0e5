"""Text formatting as the Bot API does it: parse_mode markup to plain text plus entities."""

from __future__ import annotations

import re
from typing import Any

from tests.botapi.model import bad_request

JSON = dict[str, Any]

HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>"
)
_ATTR_RE = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")
_CHARREF_RE = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_AUTO_ENTITY_RE = re.compile(
    r"(?P<bot_command>(?<![\w/])/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?)"
    r"|(?P<url>https?://[^\s]+)"
    r"|(?P<mention>(?<!\w)@[a-zA-Z0-9_]{4,32})"
)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of every entity offset and length."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of a character index, as Telegram reports parse errors."""
    return len(text[:index].encode())


def _cant_parse(detail: str) -> Exception:
    """The 400 answer for markup Telegram cannot parse."""
    return bad_request(f"can't parse entities: {detail}")


def parse(text: str, parse_mode: str | None, entities: list[JSON] | None = None) -> tuple[str, list[JSON]]:
    """Return (plain text, entities) for a text and its parse_mode or explicit entities."""
    if entities is not None:
        # Explicit entities win over parse_mode, as documented ("instead of parse_mode").
        return text, list(entities)
    mode = (parse_mode or "").lower()
    if mode == "":
        return text, []
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


def detect_entities(text: str) -> list[JSON]:
    """Entities Telegram clients attach to typed text: bot commands, URLs and mentions."""
    found: list[JSON] = []
    for m in _AUTO_ENTITY_RE.finditer(text):
        kind = m.lastgroup or "url"
        found.append({"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))})
    return found


class _Builder:
    """Accumulates plain text and entities while a parser walks the markup."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[JSON] = []

    def add(self, chunk: str) -> None:
        """Append plain text."""
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        """Close an entity that started at `start`; empty ones are dropped like Telegram does."""
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **extra})

    def result(self) -> tuple[str, list[JSON]]:
        """Plain text and entities sorted outer-first."""
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


def _parse_html(text: str) -> tuple[str, list[JSON]]:
    """Parse Telegram's HTML subset; unknown or unbalanced tags are a 400 like on Telegram."""
    out = _Builder()
    stack: list[tuple[str, int, dict[str, str]]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _TAG_RE.match(text, i)
            if not m:
                raise _cant_parse(f"Unexpected end of name token at byte offset {_byte_offset(text, i)}")
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in HTML_TAGS:
                kind = "end" if closing else "start"
                raise _cant_parse(f'Unsupported {kind} tag "{name}" at byte offset {_byte_offset(text, i)}')
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'"</{stack[-1][0]}>"' if stack else "no end tag"
                    raise _cant_parse(
                        f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                        f'expected {expected}, found "</{name}>"'
                    )
                tag, start, attrs = stack.pop()
                _close_html(out, tag, start, attrs, stack)
            else:
                attrs = {
                    a.group(1).lower(): next((g for g in a.groups()[1:] if g is not None), "")
                    for a in _ATTR_RE.finditer(m.group(3))
                }
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise _cant_parse(f'Unsupported start tag "span" at byte offset {_byte_offset(text, i)}')
                stack.append((name, out.pos, attrs))
            i = m.end()
        elif ch == "&":
            m = _CHARREF_RE.match(text, i)
            if m:
                ref = m.group(1)
                if ref.startswith("#x"):
                    out.add(chr(int(ref[2:], 16)))
                elif ref.startswith("#"):
                    out.add(chr(int(ref[1:])))
                else:
                    out.add(_NAMED[ref])
                i = m.end()
            else:
                # Telegram keeps unknown named entities such as &nbsp; verbatim.
                out.add(ch)
                i += 1
        else:
            j = i
            while j < len(text) and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _close_html(
    out: _Builder, tag: str, start: int, attrs: dict[str, str], stack: list[tuple[str, int, dict[str, str]]]
) -> None:
    """Emit the entity for a closed HTML tag."""
    kind = HTML_TAGS[tag]
    if kind == "text_link":
        href = attrs.get("href", "")
        match = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if match:
            out.entity(
                "text_mention", start, user={"id": int(match.group(1)), "is_bot": False, "first_name": ""}
            )
        elif href:
            out.entity("text_link", start, url=href)
    elif kind == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity with a language, not a nested code entity.
        if attrs.get("class", "").startswith("language-"):
            stack[-1][2]["language"] = attrs["class"].removeprefix("language-")
    elif kind == "pre":
        extra = {"language": attrs["language"]} if "language" in attrs else {}
        out.entity("pre", start, **extra)
    elif kind == "blockquote":
        out.entity("expandable_blockquote" if "expandable" in attrs else "blockquote", start)
    elif kind == "custom_emoji":
        out.entity("custom_emoji", start, custom_emoji_id=attrs.get("emoji-id", ""))
    else:
        out.entity(kind, start)


_MDV2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}


def _parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    """Parse MarkdownV2; an unescaped reserved character is a 400 exactly as on Telegram."""
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (marker, utf16 start, char index)
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.add(text[i + 1])
            i += 2
        elif ch == "`":
            i = _mdv2_code(text, i, out)
        elif text.startswith("__", i) or text.startswith("||", i) or ch in "*_~":
            marker = text[i : i + 2] if text.startswith(("__", "||"), i) else ch
            open_at = next((k for k in range(len(stack) - 1, -1, -1) if stack[k][0] == marker), None)
            if open_at is None:
                stack.append((marker, out.pos, i))
            else:
                if open_at != len(stack) - 1:
                    raise _cant_parse(
                        f"Can't find end of the entity starting at byte offset "
                        f"{_byte_offset(text, stack[-1][2])}"
                    )
                _, start, _ = stack.pop()
                out.entity(_MDV2_MARKERS[marker], start)
            i += len(marker)
        elif ch == "[":
            stack.append(("[", out.pos, i))
            i += 1
        elif ch == "]" and stack and stack[-1][0] == "[":
            _, start, _ = stack.pop()
            if not text.startswith("(", i + 1):
                raise _cant_parse("Character ']' is reserved and must be escaped with the preceding '\\'")
            end = i + 2
            url_chars: list[str] = []
            while end < n and text[end] != ")":
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                url_chars.append(text[end])
                end += 1
            if end >= n:
                raise _cant_parse(f"Can't find end of a url at byte offset {_byte_offset(text, i + 1)}")
            out.entity("text_link", start, url="".join(url_chars))
            i = end + 1
        elif ch == ">" and (i == 0 or text[i - 1] == "\n"):
            # A '>' at the start of a line opens a blockquote that runs to the end of the line.
            end = text.find("\n", i)
            end = n if end == -1 else end
            start = out.pos
            inner, inner_entities = _parse_markdown_v2(text[i + 1 : end])
            for ent in inner_entities:
                out.entities.append({**ent, "offset": ent["offset"] + start})
            out.add(inner)
            prev = out.entities[-1] if out.entities else None
            if prev and prev["type"] == "blockquote" and prev["offset"] + prev["length"] + 1 == start:
                prev["length"] = out.pos - prev["offset"]
            else:
                out.entity("blockquote", start)
            i = end
        elif ch in MDV2_RESERVED:
            raise _cant_parse(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        else:
            out.add(ch)
            i += 1
    if stack:
        raise _cant_parse(
            f"Can't find end of the entity starting at byte offset {_byte_offset(text, stack[-1][2])}"
        )
    return out.result()


def _mdv2_code(text: str, i: int, out: _Builder) -> int:
    """Parse `code` or ```pre``` starting at i; returns the index after the closing marker."""
    fence = "```" if text.startswith("```", i) else "`"
    j = i + len(fence)
    language = None
    if fence == "```":
        newline = text.find("\n", j)
        first_line = text[j:newline] if newline != -1 else ""
        if newline != -1 and first_line and re.fullmatch(r"[\w+#-]+", first_line):
            language, j = first_line, newline + 1
    start = out.pos
    chunk: list[str] = []
    while j < len(text) and not text.startswith(fence, j):
        if text[j] == "\\" and j + 1 < len(text):
            j += 1
        chunk.append(text[j])
        j += 1
    if j >= len(text):
        kind = "Pre" if fence == "```" else "Code"
        raise _cant_parse(f"Can't find end of {kind} entity at byte offset {_byte_offset(text, i)}")
    out.add("".join(chunk))
    if fence == "```":
        out.entity("pre", start, **({"language": language} if language else {}))
    else:
        out.entity("code", start)
    return j + len(fence)


def _parse_markdown_legacy(text: str) -> tuple[str, list[JSON]]:
    """Parse legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url), no nesting."""
    out = _Builder()
    i = 0
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
        elif text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise _cant_parse(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start = out.pos
            out.add(text[i + 3 : end])
            out.entity("pre", start)
            i = end + 3
        elif ch in kinds:
            end = text.find(ch, i + 1)
            if end == -1:
                raise _cant_parse(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start = out.pos
            out.add(text[i + 1 : end])
            out.entity(kinds[ch], start)
            i = end + 1
        elif ch == "[":
            m = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(text, i)
            if not m:
                raise _cant_parse(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start = out.pos
            out.add(m.group(1))
            out.entity("text_link", start, url=m.group(2))
            i = m.end()
        else:
            out.add(ch)
            i += 1
    return out.result()
