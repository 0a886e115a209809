"""Unit tests of what a text says besides its words: URLs, domains, handles, tags, emoji, flags."""

from __future__ import annotations

import pytest

from schemas.findings import Entity
from udfs.normalize import extract, flags_of


def found(text: str, kind: str) -> list[str]:
    """The texts of the entities of one type, in text order."""
    return [entity.text for entity in extract(text) if entity.type == kind]


def test_url_keeps_its_text_and_domain_points_inside_it() -> None:
    """A URL's closing punctuation is not part of it; its domain is lower-cased without www. and
    its span covers the host as written inside the URL."""
    text = "See https://www.Example.com/path?q=1). Then"
    url, domain = extract(text)
    assert url == Entity("https://www.Example.com/path?q=1", "url", 4, 36)
    assert domain == Entity("example.com", "domain", 16, 27)
    assert text[domain.start:domain.end] == "Example.com"


@pytest.mark.parametrize("after", [".", ",", ";", ":", "!", "?", ")", "]", "'", '"', "…", "!)."])
def test_trailing_punctuation_is_trimmed_from_urls(after: str) -> None:
    """Punctuation that ends the sentence around a URL is left out of it."""
    assert found(f"read https://foo.org/x{after} now", "url") == ["https://foo.org/x"]


@pytest.mark.parametrize(
    ("text", "urls", "domains"),
    [
        ("go to bit.ly/x or claim-prize.xyz now.", ["bit.ly/x", "claim-prize.xyz"],
         ["bit.ly", "claim-prize.xyz"]),
        ("Visit WWW.Foo.IO today", ["WWW.Foo.IO"], ["foo.io"]),
        ("http://user:pw@host.com:8080/a", ["http://user:pw@host.com:8080/a"], ["host.com"]),
        ("news at a.b.example.co.uk/path", ["a.b.example.co.uk/path"], ["a.b.example.co.uk"]),
        # with a scheme, any domain
        ("http://intranet.local/x", ["http://intranet.local/x"], ["intranet.local"]),
    ],
)
def test_urls_with_or_without_scheme_and_their_domains(
    text: str, urls: list[str], domains: list[str]
) -> None:
    """Bare domains with a known top-level domain count as URLs; the domain drops user, port
    and www."""
    assert (found(text, "url"), found(text, "domain")) == (urls, domains)


@pytest.mark.parametrize(
    "text", ["e.g. node.js and file.py", "mail bob@example.com", "intranet.local/x"])
def test_things_that_only_look_like_domains_are_not_urls(text: str) -> None:
    """Abbreviations, file names, e-mail addresses and unknown bare TLDs are not URLs."""
    assert found(text, "url") == []


def test_mentions_hashtags_and_cashtags() -> None:
    """@handles, #tags and $tickers (with a class suffix) are found, with their sigil."""
    text = "@alice says #Bitcoin and $BTC beat $brk.b"
    assert [(e.type, e.text) for e in extract(text)] == [
        ("mention", "@alice"), ("hashtag", "#Bitcoin"), ("cashtag", "$BTC"), ("cashtag", "$brk.b")]


@pytest.mark.parametrize(
    "text",
    [
        "it costs $100 or $5.99",  # amounts are not tickers
        "we are #1 again",  # a tag needs a letter
        "mail bob@example.com",  # an address is not a mention
        "see https://x.com/#frag and https://x.com/@user/$abc",  # parts of a URL
        "don&#39;t panic",  # an HTML entity
    ],
)
def test_no_false_tags(text: str) -> None:
    """Amounts, numbers, e-mail addresses, URL parts and HTML entities are not tags."""
    assert [e for e in extract(text) if e.type in ("mention", "hashtag", "cashtag")] == []


@pytest.mark.parametrize(
    ("text", "emoji"),
    [
        ("ok 👍🏽 then", ["👍🏽"]),  # skin tone
        ("family 👨\u200d👩\u200d👧 time", ["👨\u200d👩\u200d👧"]),  # ZWJ sequence
        ("🇫🇷 and ❤️", ["🇫🇷", "❤️"]),  # flag, variation selector
        ("🚀🚀 🌕", ["🚀", "🚀", "🌕"]),
        ("© 2024 Acme", ["©"]),  # the emoji library counts ©
    ],
)
def test_emoji_are_whole_sequences(text: str, emoji: list[str]) -> None:
    """Skin tones, ZWJ sequences, flags and variation selectors belong to one emoji each."""
    assert found(text, "emoji") == emoji


def test_every_span_points_into_the_text_in_order() -> None:
    """Each entity's span slices its text out of the input (a domain case-insensitively), and the
    entities come in text order."""
    text = "🚀 @bob: #HODL $DOGE → https://www.Doge.io/x?y=1, bit.ly/abc 👨\u200d👩\u200d👧!"
    entities = extract(text)
    assert {e.type for e in entities} == {"emoji", "mention", "hashtag", "cashtag", "url", "domain"}
    for entity in entities:
        assert text[entity.start:entity.end].lower() == entity.text.lower()
    assert [e.start for e in entities] == sorted(e.start for e in entities)


def test_plain_text_has_no_entities() -> None:
    """A text with nothing special yields nothing."""
    assert extract("just some words, nothing else.") == []


# --- flags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("", ["empty"]),
        (" \n\t ", ["empty"]),
        ("Hello world", []),
        ("bad \ufffd byte", ["invalid_utf8"]),
        ("🚀🚀 🌕", ["emoji_only"]),
        ("👍🏽 👨\u200d👩\u200d👧 ❤️", ["emoji_only"]),
        ("moon 🌕", []),
        ("Café crème, Привет, Γειά", []),
        ("我今天买了比特币。", ["unsegmented_script", "unsupported_script"]),
        ("สวัสดีครับ", ["unsegmented_script", "unsupported_script"]),
        ("Bitcoin 比特币 price is up today", ["unsegmented_script"]),  # mostly Latin
        ("مرحبا بالعالم", ["unsupported_script"]),
        ("नमस्ते दुनिया", ["unsupported_script"]),
        ("\ufffd 我们", ["invalid_utf8", "unsegmented_script", "unsupported_script"]),
    ],
)
def test_flags_of_each_kind_of_text(text: str, flags: list[str]) -> None:
    """Empty, invalid UTF-8, emoji only, unsegmented and unsupported scripts are flagged; ordinary
    Latin, Cyrillic and Greek text is not."""
    assert flags_of(text, extract(text)) == flags
