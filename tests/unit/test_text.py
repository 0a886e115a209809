"""Unit tests of the text analysis core: term and phrase hits with their spans, then TextAnalyzer
(language, sentiment per text and sentence, entities, classifier, flags, truncation, bad input)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from schemas.codec import decode, encode
from schemas.content import ContentEvent, decode_event
from schemas.findings import Entity, Sentiment, TermHit, TextFindings
from schemas.rule import Rule
from schemas.textnorm import fold
from trackius.settings import Settings
from trackius.textcmd import event_for
from udfs.languages import MAX_CHARS as LANGUAGE_HEAD
from udfs.nlp import Nlp
from udfs.query import RuleIndex, Words
from udfs.text import LANGUAGE_MODEL, SENTIMENT_MODEL, TextAnalyzer

REPO = Path(__file__).resolve().parents[2]
MAX_CHARS = 20_000  # the default analysis limit
CORE = TextAnalyzer(MAX_CHARS, Nlp(Settings().nltk_data_dir), classifier=None)
STOCK = SentimentIntensityAnalyzer()
NEUTRAL = Sentiment(0.0, 0.0, 1.0, 0.0)
EVENT_JSON = ('{{"content_key":"x:1","platform":"x","source":"s","author":"a","published_at":1,'
              '"collected_at":2,"text":"{text}"}}')


def index(*conditions: str) -> RuleIndex:
    return RuleIndex(Rule(f"r{i}", 1, condition=c) for i, c in enumerate(conditions))


def scan(text: str, *conditions: str) -> tuple[list[TermHit], list[Entity]]:
    return index(*conditions).scanner.scan(Words.of(fold(text)), text)


def hits(text: str, *conditions: str) -> list[TermHit]:
    return scan(text, *conditions)[0]


def spans(text: str, *conditions: str) -> list[tuple[str, str]]:
    """(term, the original text it covers) for every hit, in order."""
    return [(hit.term, text[hit.start:hit.end]) for hit in hits(text, *conditions)]


def event(text: str, number: int = 1, collected_at: int = 1_000,
          lang: str | None = None) -> ContentEvent:
    return ContentEvent(f"x:{number}", "x", "timeline", "alice", 500, collected_at, text=text,
                        lang=lang)


def stock(text: str) -> Sentiment:
    scores = STOCK.polarity_scores(text)
    return Sentiment(scores["compound"], scores["pos"], scores["neu"], scores["neg"])


# --- rule index -------------------------------------------------------------------------------


def test_inactive_and_deleted_rules_contribute_nothing() -> None:
    """Disabled and deleted rules add no rules and no terms to scan for."""
    rules = [
        Rule("off", 1, enabled=False, condition='doge OR "to the moon"'),
        Rule("gone", 2, deleted=True),
        Rule("gone-with-condition", 2, deleted=True, condition="pepe"),
    ]
    built = RuleIndex(rules)
    assert (built.rules, built.scanner.size) == ([], 0)
    text = "doge to the moon pepe"
    assert built.scanner.scan(Words.of(fold(text)), text) == ([], [])


def test_empty_index_finds_nothing() -> None:
    """With no rules there are no hits, whatever the text."""
    assert hits("doge to the moon") == []


def test_terms_of_all_rules_are_scanned_in_one_pass() -> None:
    """Terms and phrases of different rules are all found in one scan."""
    found = spans("to the moon with $DOGE", '$doge OR "to the moon"', 'NOT scam AND "elon musk"')
    assert found == [("to the moon", "to the moon"), ("$doge", "$DOGE")]


# --- hits -------------------------------------------------------------------------------------


def test_hit_offsets_and_word_positions_refer_to_the_original_text() -> None:
    """start/end slice the original text exactly, whatever its case; word/word_end count words."""
    text = "Why is DOGE up? doge!"
    assert hits(text, "doge") == [TermHit("doge", 7, 11, 2, 3), TermHit("doge", 16, 20, 4, 5)]
    assert spans(text, "doge") == [("doge", "DOGE"), ("doge", "doge")]


def test_phrase_hit_covers_its_words() -> None:
    """A phrase hit spans from its first to its last word, and word..word_end are those words."""
    assert hits("we go to the moon!", '"to the moon"') == [TermHit("to the moon", 6, 17, 2, 5)]


def test_accented_text_matches_and_keeps_original_offsets() -> None:
    """An accented, upper-case word matches the plain term, and the offsets cover the original."""
    assert spans("Le CAFÉ est à Zürich", "cafe OR zurich") == [
        ("cafe", "CAFÉ"), ("zurich", "Zürich")]


def test_nfkc_forms_match_with_original_offsets() -> None:
    """Full-width letters and ligatures match their plain forms; offsets are of the original."""
    assert spans("ＤＯＧＥ ﬁnance", "doge OR finance") == [
        ("doge", "ＤＯＧＥ"), ("finance", "ﬁnance")]


def test_decomposed_accents_match_like_composed_ones() -> None:
    """NFD text ('nai' + combining diaeresis + 've') matches 'naive' over the whole word."""
    assert spans("so nai\u0308ve", "naive") == [("naive", "nai\u0308ve")]


def test_hits_after_emoji_and_expanding_characters_keep_their_offsets() -> None:
    """Emoji, ß and ligatures before a hit do not shift its span."""
    text = "🚀🚀 Straße ﬁ 👨\u200d👩\u200d👧 DOGE"
    assert spans(text, "doge OR strasse") == [("strasse", "Straße"), ("doge", "DOGE")]


def test_cashtag_term_only_matches_the_cashtag() -> None:
    """The term '$doge' finds '$DOGE' but not a plain 'doge'."""
    assert spans("doge and $DOGE", "$doge") == [("$doge", "$DOGE")]


def test_plain_term_matches_word_and_cashtag() -> None:
    """The plain term 'doge' finds both 'doge' and '$doge' (the hit covers the sigil)."""
    assert spans("doge and $DOGE", "doge") == [("doge", "doge"), ("doge", "$DOGE")]


def test_cashtag_token_with_both_terms_hits_both() -> None:
    """'$doge' in the text is a hit for '$doge' and for 'doge' when both are tracked."""
    assert hits("$doge", "$doge OR doge") == [
        TermHit("$doge", 0, 5, 0, 1), TermHit("doge", 0, 5, 0, 1)]


def test_hashtag_and_handle_terms() -> None:
    """#hashtag and @handle terms match the tagged words only."""
    assert spans("hodl #HODL elonmusk @ElonMusk", "#hodl OR @elonmusk") == [
        ("#hodl", "#HODL"), ("@elonmusk", "@ElonMusk")]


def test_term_matches_whole_words_only() -> None:
    """'doge' does not match inside 'dogecoin' or 'underdoge'."""
    assert hits("dogecoin underdoge", "doge") == []


def test_wildcard_hit_covers_the_whole_word() -> None:
    """A wildcard's hit spans the whole word it matched, sigils included."""
    assert spans("Cryptocurrency, $CRYPTO and #cryptos", "crypt*") == [
        ("crypt*", "Cryptocurrency"), ("crypt*", "$CRYPTO"), ("crypt*", "#cryptos")]
    assert spans("bitcoin crashes again", '"bitcoin crash*"') == [
        ("bitcoin crash*", "bitcoin crashes")]


def test_phrase_matches_across_punctuation_and_spacing() -> None:
    """A phrase matches words separated by punctuation or several spaces; the hit spans them."""
    text = "Elon-Musk said: elon,   MUSK. Elon Musk"
    assert spans(text, '"elon musk"') == [
        ("elon musk", "Elon-Musk"), ("elon musk", "elon,   MUSK"), ("elon musk", "Elon Musk")]


def test_phrase_needs_its_words_in_order_and_adjacent() -> None:
    """'musk elon' and 'elon R. musk' do not match the phrase 'elon musk'."""
    assert hits("musk elon; elon R. musk", '"elon musk"') == []


def test_phrase_matches_cashtag_words_by_their_bare_form() -> None:
    """The phrase 'doge to the moon' matches '$DOGE to the moon' (sigils are ignored in phrases)."""
    assert spans("$DOGE to the moon", '"doge to the moon"') == [
        ("doge to the moon", "$DOGE to the moon")]


def test_phrase_with_a_cashtag_word_matches() -> None:
    """The phrase 'buy $doge' matches the text 'Buy $DOGE now'."""
    assert spans("Buy $DOGE now", '"buy $doge"') == [("buy doge", "Buy $DOGE")]


def test_phrase_at_end_of_text_does_not_overrun() -> None:
    """A phrase's first words at the very end of the text are not a hit (and do not raise)."""
    assert hits("all the way to the", '"to the moon"') == []


def test_overlapping_phrases_and_terms_all_hit() -> None:
    """Terms and phrases sharing words each produce their own hit, in text order."""
    assert spans("to the moon", 'moon OR "to the moon" OR "the moon"') == [
        ("to the moon", "to the moon"), ("the moon", "the moon"), ("moon", "moon")]


def test_apostrophe_words_are_one_token() -> None:
    """Contractions are single words: "don't" matches the term "don't", not "don"."""
    assert spans("I don't care", "\"don't\" OR don") == [("don't", "don't")]


def test_unsegmented_terms_match_inside_a_run_of_text() -> None:
    """Chinese and Thai terms match inside text without spaces; the span covers their characters."""
    assert spans("我今天买了比特币。", "比特币") == [("比 特 币", "比特币")]
    assert spans("สวัสดีครับ ทุกคน", "สวัสดี") == [("ส ว ั ส ด ี", "สวัสดี")]


def test_hashtag_term_does_not_match_inside_a_url() -> None:
    """A URL's #fragment is not a hashtag: `hashtag:bitcoin` does not hit it."""
    assert hits("read https://example.com/#bitcoin", "hashtag:bitcoin") == []


def test_handle_term_does_not_match_inside_an_email_address() -> None:
    """An e-mail address is not a mention: `@elonmusk` does not hit 'press@elonmusk.com'."""
    assert scan("mail press@elonmusk.com", "@elonmusk") == ([], [])


def test_hit_order_does_not_depend_on_the_hash_seed() -> None:
    """Hits and tracked names come in the same order in every Python process."""
    script = (
        "from schemas.rule import Rule\n"
        "from schemas.textnorm import fold\n"
        "from udfs.query import RuleIndex, Words\n"
        "rule = Rule('r', 1, condition='$doge OR doge OR @doge OR \"doge coin\"')\n"
        "text = '$doge @doge doge coin'\n"
        "found, names = RuleIndex([rule]).scanner.scan(Words.of(fold(text)), text)\n"
        "print([(h.term, h.start) for h in found], [(e.type, e.start) for e in names])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env={"PYTHONHASHSEED": str(seed)},
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
        for seed in (0, 5)
    }
    assert len(outputs) == 1


# --- TextAnalyzer: what it reports ------------------------------------------------------------


def test_analyse_copies_keys_and_times_and_names_the_models() -> None:
    """Findings carry the content key, collected_at from the event, analysed_at, the model names."""
    found = CORE.analyse(event("doge", collected_at=1_234), index("doge"), analysed_at=5_678)
    assert (found.content_key, found.collected_at, found.analysed_at) == ("x:1", 1_234, 5_678)
    assert found.models == {"sentiment": SENTIMENT_MODEL, "lang": LANGUAGE_MODEL}
    assert SENTIMENT_MODEL.startswith("vader-") and LANGUAGE_MODEL.startswith("py3langid-")
    assert found.hits == (TermHit("doge", 0, 4, 0, 1),) and found.part_id == "text"
    assert found.classifiers == {}


BATCH = [
    "I love this, it is wonderful!",
    "This is terrible, I hate it. Never again!",
    "Angela Merkel visited Berlin on Monday. She liked it.",
    "Das Auto ist sehr schnell und die Straße ist lang",
    "doge to the moon 🚀 https://bit.ly/x #HODL $DOGE @elon",
    "",
    "🚀🚀 🌕",
    "我今天买了比特币。",
    "سعر بيتكوين اليوم",
    "bad \ufffd bytes",
    "doge " * 4_100,  # longer than the limit
]
BATCH_RULES = ('doge OR "to the moon"', 'entity("Angela Merkel") AND berlin',
               "比特币 OR بيتكوين", "auto")


def test_batch_equals_one_by_one_in_order() -> None:
    """A batch gives, in order, exactly what analysing each text alone gives."""
    events = [event(text, number=i, collected_at=i) for i, text in enumerate(BATCH)]
    rules = index(*BATCH_RULES)
    batch = CORE.analyse_batch(events, rules, analysed_at=9)
    assert batch == [CORE.analyse(item, rules, analysed_at=9) for item in events]
    assert [f.content_key for f in batch] == [e.content_key for e in events]
    assert [f.collected_at for f in batch] == list(range(len(BATCH)))
    assert {f.analysed_at for f in batch} == {9}


def test_empty_batch() -> None:
    """No events, no findings."""
    assert CORE.analyse_batch([], index("doge")) == []


def test_sentiment_is_stock_vader_for_the_text_and_each_sentence() -> None:
    """The text's sentiment and every sentence's are the stock VADER scores of that text."""
    several = "I love this phone. The battery is terrible! Shipping was fine, but slow."
    for text in [*BATCH[:5], several]:
        found = CORE.analyse(event(text), index())
        assert found.sentiment == stock(text)
        assert [s.sentiment for s in found.sentences] == [
            stock(text[s.start:s.end]) for s in found.sentences]


def test_sentences_are_in_order_and_inside_the_text() -> None:
    """Sentence spans follow each other without overlapping, each a non-blank piece of the text."""
    text = "I love this phone. The battery is terrible! Shipping was fine, but slow."
    found = CORE.analyse(event(text), index())
    assert [text[s.start:s.end] for s in found.sentences] == [
        "I love this phone.", "The battery is terrible!", "Shipping was fine, but slow."]


def test_clearly_positive_and_negative_texts() -> None:
    """An enthusiastic text scores above 0.5, a hostile one below -0.5."""
    positive = CORE.analyse(event("I love this, it is wonderful!"), index()).sentiment
    negative = CORE.analyse(event("This is terrible, I hate it."), index()).sentiment
    assert positive.compound > 0.5 and positive.pos > positive.neg
    assert negative.compound < -0.5 and negative.neg > negative.pos


def test_declared_language_wins() -> None:
    """The platform's declared language is kept as is, without an identifier score."""
    found = CORE.analyse(event("This is plainly English text", lang="de"), index())
    assert (found.lang, found.lang_score) == ("de", None)


@pytest.mark.parametrize(
    "text", ["This is plainly English text", "Das Auto ist sehr schnell", "Le chat dort", "12345"])
def test_undeclared_language_is_identified(text: str) -> None:
    """Without a declared language the identifier's answer for the text is reported, scored."""
    found = CORE.analyse(event(text), index())
    label, probability = CORE.languages.reference.classify(text[:LANGUAGE_HEAD])
    assert found.lang == label and found.lang_score is not None
    assert abs(found.lang_score - probability) < 1e-3


def test_entities_are_sorted_with_exact_spans() -> None:
    """URLs, domains, handles, tags, emoji and chunked names come in text order, each span
    slicing its text (a domain in lower case) out of the original."""
    text = "Angela Merkel met @bob in Berlin 🚀 #EU https://www.Europa.eu/x. It was great!"
    found = CORE.analyse(event(text), index('entity("Angela Merkel") AND berlin')).entities
    assert {(e.type, e.text) for e in found} >= {
        ("name", "Angela Merkel"), ("mention", "@bob"), ("name", "Berlin"), ("emoji", "🚀"),
        ("hashtag", "#EU"), ("url", "https://www.Europa.eu/x"), ("domain", "europa.eu")}
    assert [(e.start, e.type) for e in found] == sorted((e.start, e.type) for e in found)
    for entity in found:
        written = text[entity.start:entity.end]
        assert (written.lower() if entity.type == "domain" else written) == entity.text


def test_names_are_not_looked_for_without_a_rule_that_needs_them() -> None:
    """Without an entity(...) rule, names are not chunked."""
    found = CORE.analyse(event("Angela Merkel visited Berlin on Monday."), index("berlin"))
    assert [e for e in found.entities if e.type == "name"] == []


class FakeSpam:
    """A classifier that records its batches and scores a text by its length."""

    model_id = "spam-fake-1"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> list[float]:
        self.batches.append(list(texts))
        return [len(text) / 30_000 for text in texts]


def test_classifier_scores_each_batch_once() -> None:
    """The classifier sees the batch's texts (cut to the limit) in one call; each finding carries
    its score, rounded, and the model is named."""
    spam = FakeSpam()
    core = TextAnalyzer(MAX_CHARS, CORE.nlp, classifier=spam)  # type: ignore[arg-type]
    texts = ["WIN a prize now", "x" * (MAX_CHARS + 10)]
    found = core.analyse_batch([event(text, number=i) for i, text in enumerate(texts)], index())
    assert spam.batches == [["WIN a prize now", "x" * MAX_CHARS]]
    assert [f.classifiers for f in found] == [{"spam": 0.0005}, {"spam": 0.6667}]
    assert found[0].models["spam"] == "spam-fake-1"


def test_findings_survive_an_encode_decode_round_trip() -> None:
    """Findings with sentences, entities, hits, flags and scores encode as JSON that decodes
    equal."""
    text = "Angela Merkel loves $DOGE in Berlin! https://bit.ly/x 🚀 Bad \ufffd. " + "doge " * 4_000
    rules = index("doge", 'entity("Angela Merkel") AND berlin')
    found = CORE.analyse(event(text), rules, analysed_at=3)
    assert found.sentences and found.entities and found.hits and found.flags and found.lang_score
    assert decode(TextFindings, encode(found)) == found


# --- TextAnalyzer: truncation and bad input ---------------------------------------------------


def test_text_at_the_limit_is_not_truncated() -> None:
    """A text within the limit is analysed whole: text_chars is its length, truncated is false."""
    found = CORE.analyse(event("x" * MAX_CHARS), index())
    assert (found.text_chars, found.truncated, found.flags) == (MAX_CHARS, False, ())


def test_long_text_is_truncated_and_flagged() -> None:
    """Past the limit the text is cut: text_chars is the full length, hits only from the head."""
    text = "doge " * (MAX_CHARS // 5) + "moon " * 20  # 'moon' starts at the limit
    found = CORE.analyse(event(text), index("doge OR moon"))
    assert (found.text_chars, found.truncated, found.flags) == (len(text), True, ("truncated",))
    assert found.matched() == {"doge"} and len(found.hits) == MAX_CHARS // 5


def test_a_megabyte_text_costs_what_its_head_costs() -> None:
    """A 1 MB text is analysed as its first max_chars characters (flagged truncated, its full
    length kept), in well under a second."""
    text = ("Angela Merkel said doge to the moon, I love it! " * 25_000)[:1_000_000]
    rules = index('doge OR "to the moon"', "merkel")
    head = CORE.analyse(event(text[:MAX_CHARS]), rules)
    started = time.perf_counter()
    found = CORE.analyse(event(text), rules)
    elapsed = time.perf_counter() - started
    assert (found.text_chars, found.truncated, found.flags) == (1_000_000, True, ("truncated",))
    assert dataclasses.replace(found, text_chars=MAX_CHARS, truncated=False, flags=()) == head
    assert max(s.end for s in found.sentences) <= MAX_CHARS
    assert elapsed < 1.0, elapsed


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_neutral_and_flagged(text: str) -> None:
    """An empty or blank text is flagged empty: neutral, without language, sentences, hits or
    entities."""
    found = CORE.analyse(event(text), index("doge"))
    assert found.flags == ("empty",) and found.sentiment == NEUTRAL
    assert (found.lang, found.lang_score) == (None, None)
    assert (found.sentences, found.hits, found.entities) == ((), (), ())
    assert (found.text_chars, found.truncated) == (len(text), False)


def test_replacement_characters_are_flagged_and_the_rest_analysed() -> None:
    """A text with U+FFFD is flagged invalid_utf8 and otherwise analysed as usual."""
    text = "I love doge \ufffd\ufffd so much"
    found = CORE.analyse(event(text), index("doge"))
    assert found.flags == ("invalid_utf8",)
    assert found.sentiment == stock(text) and found.matched() == {"doge"}
    assert found.lang is not None


def test_invalid_utf8_bytes_in_an_event_become_replacement_characters() -> None:
    """decode_event keeps an event whose JSON has undecodable bytes in its text: they become
    U+FFFD, and the analysis flags them."""
    raw = EVENT_JSON.format(text="doge @@ bytes @").encode().replace(b"@@", b"\xff\xfe")
    decoded = decode_event(raw.replace(b" @", b" \xc3"))
    assert decoded.text == "doge \ufffd\ufffd bytes \ufffd"
    found = CORE.analyse(decoded, index("doge"))
    assert found.flags == ("invalid_utf8",) and found.matched() == {"doge"}


def test_lone_surrogate_escapes_become_replacement_characters() -> None:
    """A JSON-escaped lone surrogate (which no UTF-8 writer accepts) becomes U+FFFD, whether the
    event comes as str or bytes."""
    raw = EVENT_JSON.format(text="lone \\ud800 and \\udfff here")
    expected = "lone \ufffd and \ufffd here"
    assert decode_event(raw).text == decode_event(raw.encode()).text == expected
    assert CORE.analyse(decode_event(raw), index()).flags == ("invalid_utf8",)


def test_escaped_surrogate_pair_stays_an_emoji() -> None:
    """A valid escaped surrogate pair is the character it encodes, not a replacement."""
    assert decode_event(EVENT_JSON.format(text="moon \\ud83d\\ude80")).text == "moon 🚀"


def test_emoji_only_text_is_flagged_without_a_language() -> None:
    """A text of emoji and spaces is flagged emoji_only, has no language, and its emoji are
    entities."""
    text = "🚀🚀 🌕 👨\u200d👩\u200d👧"
    found = CORE.analyse(event(text), index("moon"))
    assert found.flags == ("emoji_only",) and (found.lang, found.lang_score) == (None, None)
    assert [e.text for e in found.entities] == ["🚀", "🚀", "🌕", "👨\u200d👩\u200d👧"]
    assert found.hits == () and found.sentiment == stock(text)


@pytest.mark.parametrize(
    ("text", "condition", "term", "written", "lang"),
    [
        ("我今天买了比特币，很开心。", "比特币", "比 特 币", "比特币", "zh"),
        ("สวัสดีครับ ทุกคน วันนี้อากาศดีมาก", "สวัสดี", "ส ว ั ส ด ี", "สวัสดี", "th"),
    ],
)
def test_unsegmented_scripts_are_flagged_and_still_match(
    text: str, condition: str, term: str, written: str, lang: str
) -> None:
    """Chinese and Thai texts are flagged unsegmented_script, identified, and their terms hit."""
    found = CORE.analyse(event(text), index(condition))
    assert "unsegmented_script" in found.flags and found.lang == lang
    assert [(hit.term, text[hit.start:hit.end]) for hit in found.hits] == [(term, written)]


@pytest.mark.parametrize(
    ("text", "term"),
    [("سعر بيتكوين اليوم مرتفع جدا", "بيتكوين"), ("आज बिटकॉइन की कीमत बढ़ी", "आज")],
)
def test_unsupported_scripts_are_flagged_and_still_analysed(text: str, term: str) -> None:
    """Arabic and Hindi texts are flagged unsupported_script and still get a language, a
    sentence, a sentiment and their term hits."""
    found = CORE.analyse(event(text), index(term))
    assert found.flags == ("unsupported_script",)
    assert found.lang is not None and found.lang_score is not None
    assert [(s.start, s.end) for s in found.sentences] == [(0, len(text))]
    assert found.sentiment == stock(text) and found.matched() == {term}


def test_hindi_terms_match_whole_words_only() -> None:
    """'भारत' (India) does not match inside 'भारतीय' (Indian), as a Latin term would not."""
    assert CORE.analyse(event("भारतीय टीम जीत गई"), index("भारत")).hits == ()


def test_a_batch_the_classifier_cannot_score_keeps_its_other_findings(caplog) -> None:
    """A classifier failure on one batch logs a warning and leaves that batch without spam
    scores; the rest of the analysis is there and the next batch is scored again."""
    from schemas.errors import ModelError

    class Flaky:
        model_id = "flaky"
        calls = 0

        def score(self, texts):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ModelError("onnxruntime failed on a batch: boom")
            return [0.5] * len(texts)

    core = TextAnalyzer(1000, Nlp(Settings().nltk_data_dir), classifier=Flaky())
    first = core.analyse(event_for("I love this!", 1), RuleIndex())
    assert first.classifiers == {} and first.sentiment.compound > 0
    assert "spam scores skipped for a batch of 1 texts" in caplog.text
    assert core.analyse(event_for("again", 2), RuleIndex()).classifiers == {"spam": 0.5}
