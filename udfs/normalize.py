"""What a text says besides its words: URLs and their domains, @mentions, #hashtags, $cashtags,
emoji, and the flags that explain a partial analysis. Pure; spans are offsets into the text.
"""

from __future__ import annotations

import re

import emoji

from schemas.findings import Entity
from schemas.textnorm import HAS_UNSEGMENTED

# Top-level domains recognised without a scheme ("bit.ly/x", "claim-prize.xyz"): the common
# ones and those favoured by link shorteners and scams. With a scheme, any domain counts.
_BARE_TLDS = (
    "com|net|org|io|co|ly|me|xyz|info|biz|app|dev|gg|tv|us|uk|de|fr|ru|cn|in|br|top|club|"
    "online|site|shop|live|link|click|win|vip|bet|money|finance|cash|crypto|ai|to|so"
)
_URL = re.compile(
    rf"""\bhttps?://[^\s<>"'`]+
       | \bwww\.[^\s<>"'`]+
       | (?<![@\w.\-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_BARE_TLDS})\b(?:/[^\s<>"'`]*)?""",
    re.VERBOSE | re.IGNORECASE,
)
_HOST = re.compile(r"^(?:https?://)?(?:[^@/\s]*@)?(?P<host>[^/:?#\s]+)", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\"…"
_MENTION = re.compile(r"(?<![\w@.])@\w{1,50}")
_HASHTAG = re.compile(r"(?<![\w#&])#\w*[^\W\d]\w*")
_CASHTAG = re.compile(r"(?<![\w$])\$[A-Za-z][A-Za-z0-9]{0,9}(?:\.[A-Za-z]{1,2})?(?![\w])")
# Characters that may start an emoji; a text without any skips the emoji library altogether.
_EMOJI_HINT = re.compile("[\u00a9\u00ae\u203c-\u3299\U0001f000-\U0001faff]")
_REPLACEMENT = "\ufffd"
_SUPPORTED_LETTERS = re.compile(r"[A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]")
_LETTERS = re.compile(r"[^\W\d_]")


def extract(text: str) -> list[Entity]:
    """URLs (with their domain), mentions, hashtags, cashtags and emoji, in text order."""
    found: list[Entity] = []
    url_spans = []
    for match in _URL.finditer(text):
        url = match.group().rstrip(_TRAILING)
        start, end = match.start(), match.start() + len(url)
        url_spans.append((start, end))
        found.append(Entity(url, "url", start, end))
        host = _HOST.match(url)
        if host:
            domain = host.group("host").lower().removeprefix("www.")
            offset = start + host.start("host") + (4 if host.group("host").lower().startswith("www.") else 0)
            found.append(Entity(domain, "domain", offset, offset + len(domain)))
    for pattern, kind in ((_MENTION, "mention"), (_HASHTAG, "hashtag"), (_CASHTAG, "cashtag")):
        for match in pattern.finditer(text):
            if not any(s <= match.start() < e for s, e in url_spans):
                found.append(Entity(match.group(), kind, match.start(), match.end()))
    if _EMOJI_HINT.search(text):
        found.extend(Entity(item["emoji"], "emoji", item["match_start"], item["match_end"])
                     for item in emoji.emoji_list(text))
    found.sort(key=lambda entity: (entity.start, entity.type))
    return found


def flags_of(text: str, entities: list[Entity]) -> list[str]:
    """Flags that depend on the text alone (truncation is the caller's)."""
    if not text.strip():
        return ["empty"]
    flags = []
    if _REPLACEMENT in text:
        flags.append("invalid_utf8")
    if text.isascii():
        return flags
    emoji_chars = sum(entity.end - entity.start for entity in entities if entity.type == "emoji")
    if emoji_chars and emoji_chars + sum(ch.isspace() for ch in text) == len(text):
        flags.append("emoji_only")
    if HAS_UNSEGMENTED.search(text):
        flags.append("unsegmented_script")
    letters = len(_LETTERS.findall(text))
    if letters and len(_SUPPORTED_LETTERS.findall(text)) < letters / 2:
        flags.append("unsupported_script")
    return flags
