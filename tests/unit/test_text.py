"""Unit tests of the text analysis core: vocabulary, term and phrase hits, sentiment, truncation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.content import ContentEvent
from schemas.findings import TermHit, TextFindings
from schemas.rule import Rule
from udfs.text import SENTIMENT_MODEL, TextAnalyzer, Vocabulary, find_hits

REPO = Path(__file__).resolve().parents[2]


def vocabulary(*conditions: str) -> Vocabulary:
    return Vocabulary.from_rules(Rule(f"r{i}", 1, condition=c) for i, c in enumerate(conditions))


def spans(text: str, vocab: Vocabulary) -> list[tuple[str, str]]:
    """(term, the original text it covers) for every hit, in order."""
    return [(hit.term, text[hit.start : hit.end]) for hit in find_hits(text, vocab)]


def event(text: str, collected_at: int = 1_000) -> ContentEvent:
    return ContentEvent("x:1", "x", "timeline", "alice", 500, collected_at, text=text)


# --- vocabulary -------------------------------------------------------------------------------


def test_vocabulary_collects_terms_and_indexes_phrases_by_first_word() -> None:
    """Terms of all active rules are pooled; phrases are indexed by their first word, sorted."""
    vocab = vocabulary('$doge OR "to the moon"', 'NOT scam AND ("to the max" OR "elon musk")')
    assert vocab.terms == {"$doge", "scam"}
    assert vocab.phrases == {
        "to": (("to", "the", "max"), ("to", "the", "moon")),
        "elon": (("elon", "musk"),),
    }


def test_inactive_and_deleted_rules_contribute_nothing() -> None:
    """Disabled and deleted rules add no terms or phrases."""
    rules = [
        Rule("off", 1, enabled=False, condition='doge OR "to the moon"'),
        Rule("gone", 2, deleted=True),
        Rule("gone-with-condition", 2, deleted=True, condition="pepe"),
    ]
    assert Vocabulary.from_rules(rules) == Vocabulary()


def test_empty_vocabulary_finds_nothing() -> None:
    """With no rules there are no hits, whatever the text."""
    assert find_hits("doge to the moon", Vocabulary()) == []


# --- hits -------------------------------------------------------------------------------------


def test_hit_offsets_refer_to_the_original_text() -> None:
    """start/end slice the original text exactly, whatever its case."""
    text = "Why is DOGE up? doge!"
    assert find_hits(text, vocabulary("doge")) == [TermHit("doge", 7, 11), TermHit("doge", 16, 20)]
    assert spans(text, vocabulary("doge")) == [("doge", "DOGE"), ("doge", "doge")]


def test_accented_text_matches_and_keeps_original_offsets() -> None:
    """An accented, upper-case word matches the plain term, and the offsets cover the original."""
    text = "Le CAFÉ est à Zürich"
    assert spans(text, vocabulary("cafe OR zurich")) == [("cafe", "CAFÉ"), ("zurich", "Zürich")]


def test_nfkc_forms_match_with_original_offsets() -> None:
    """Full-width letters and ligatures match their plain forms; offsets are of the original."""
    text = "ＤＯＧＥ ﬁnance"
    expected = [("doge", "ＤＯＧＥ"), ("finance", "ﬁnance")]
    assert spans(text, vocabulary("doge OR finance")) == expected


def test_cashtag_term_only_matches_the_cashtag() -> None:
    """The term '$doge' finds '$DOGE' but not a plain 'doge'."""
    assert spans("doge and $DOGE", vocabulary("$doge")) == [("$doge", "$DOGE")]


def test_plain_term_matches_word_and_cashtag() -> None:
    """The plain term 'doge' finds both 'doge' and '$doge' (the hit covers the sigil)."""
    assert spans("doge and $DOGE", vocabulary("doge")) == [("doge", "doge"), ("doge", "$DOGE")]


def test_cashtag_token_with_both_terms_hits_both() -> None:
    """'$doge' in the text is a hit for '$doge' and for 'doge' when both are tracked."""
    hits = find_hits("$doge", vocabulary("$doge OR doge"))
    assert sorted(hits, key=lambda h: h.term) == [TermHit("$doge", 0, 5), TermHit("doge", 0, 5)]


def test_hashtag_and_handle_terms() -> None:
    """#hashtag and @handle terms match the tagged words only."""
    vocab = vocabulary("#hodl OR @elonmusk")
    expected = [("#hodl", "#HODL"), ("@elonmusk", "@ElonMusk")]
    assert spans("hodl #HODL elonmusk @ElonMusk", vocab) == expected


def test_term_matches_whole_words_only() -> None:
    """'doge' does not match inside 'dogecoin' or 'underdoge'."""
    assert find_hits("dogecoin underdoge", vocabulary("doge")) == []


def test_phrase_matches_across_punctuation_and_spacing() -> None:
    """A phrase matches words separated by punctuation or several spaces; the hit spans them."""
    text = "Elon-Musk said: elon,   MUSK. Elon Musk"
    assert spans(text, vocabulary('"elon musk"')) == [
        ("elon musk", "Elon-Musk"), ("elon musk", "elon,   MUSK"), ("elon musk", "Elon Musk")]


def test_phrase_needs_its_words_in_order_and_adjacent() -> None:
    """'musk elon' and 'elon R. musk' do not match the phrase 'elon musk'."""
    assert find_hits("musk elon; elon R. musk", vocabulary('"elon musk"')) == []


def test_phrase_matches_cashtag_words_by_their_bare_form() -> None:
    """The phrase 'doge to the moon' matches '$DOGE to the moon' (sigils are ignored in phrases)."""
    text = "$DOGE to the moon"
    assert spans(text, vocabulary('"doge to the moon"')) == [("doge to the moon", text)]


def test_phrase_at_end_of_text_does_not_overrun() -> None:
    """A phrase's first word at the very end of the text is not a hit (and does not raise)."""
    assert find_hits("all the way to the", vocabulary('"to the moon"')) == []


def test_overlapping_phrases_and_terms_all_hit() -> None:
    """Terms and phrases sharing words each produce their own hit."""
    text = "to the moon"
    assert spans(text, vocabulary('moon OR "to the moon" OR "the moon"')) == [
        ("to the moon", "to the moon"), ("the moon", "the moon"), ("moon", "moon")]


def test_apostrophe_words_are_one_token() -> None:
    """Contractions are single words: "don't" matches the term "don't", not "don"."""
    assert spans("I don't care", vocabulary("\"don't\" OR don")) == [("don't", "don't")]


def test_decomposed_accents_match_like_composed_ones() -> None:
    """NFD text ('nai' + combining diaeresis + 've') matches 'naive' over the whole word."""
    text = "so nai\u0308ve"
    assert spans(text, vocabulary("naive")) == [("naive", "nai\u0308ve")]


def test_phrase_with_a_cashtag_word_matches() -> None:
    """The phrase 'buy $doge' matches the text 'Buy $DOGE now'."""
    assert spans("Buy $DOGE now", vocabulary('"buy $doge"')) == [("buy doge", "Buy $DOGE")]


def test_hit_order_does_not_depend_on_the_hash_seed() -> None:
    """find_hits gives the same list in every Python process."""
    script = (
        "from udfs.text import Vocabulary, find_hits\n"
        "v = Vocabulary(frozenset({'$doge', 'doge'}))\n"
        "print([h.term for h in find_hits('$doge', v)])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env={"PYTHONHASHSEED": str(seed)},
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
        for seed in (0, 5)
    }
    assert len(outputs) == 1


# --- TextAnalyzer -----------------------------------------------------------------------------

ANALYZER = TextAnalyzer(max_chars=40)


def test_score_copies_keys_and_times_and_names_the_model() -> None:
    """Findings carry the content key, collected_at from the event, analysed_at, the model name."""
    found = ANALYZER.score(event("doge", collected_at=1_234), vocabulary("doge"), analysed_at=5_678)
    assert (found.content_key, found.collected_at, found.analysed_at) == ("x:1", 1_234, 5_678)
    assert found.models == {"sentiment": SENTIMENT_MODEL} and SENTIMENT_MODEL.startswith("vader-")
    assert found.hits == (TermHit("doge", 0, 4),) and found.part_id == "text"


def test_short_text_is_not_truncated() -> None:
    """A text within the limit is analysed whole: text_chars is its length, truncated is false."""
    findings = ANALYZER.score(event("x" * 40), Vocabulary())
    assert (findings.text_chars, findings.truncated) == (40, False)


def test_long_text_is_truncated_and_flagged() -> None:
    """Past max_chars the text is cut: text_chars is the full length, hits only from the prefix."""
    text = "doge " * 8 + "moon " * 20  # 'moon' starts at char 40, beyond the limit
    findings = ANALYZER.score(event(text), vocabulary("doge OR moon"))
    assert (findings.text_chars, findings.truncated) == (len(text), True)
    assert findings.matched() == {"doge"} and len(findings.hits) == 8


def test_clearly_positive_text_has_positive_sentiment() -> None:
    """An enthusiastic text scores a compound sentiment above 0.5."""
    findings = ANALYZER.score(event("I love this, it is wonderful!"), Vocabulary())
    assert findings.sentiment.compound > 0.5 and findings.sentiment.pos > findings.sentiment.neg


def test_clearly_negative_text_has_negative_sentiment() -> None:
    """A hostile text scores a compound sentiment below -0.5."""
    findings = ANALYZER.score(event("This is terrible, I hate it."), Vocabulary())
    assert findings.sentiment.compound < -0.5 and findings.sentiment.neg > findings.sentiment.pos


def test_empty_text_is_neutral() -> None:
    """An empty text gets compound 0, neutral 1, and no hits."""
    findings = ANALYZER.score(event(""), vocabulary("doge"))
    assert (findings.sentiment.compound, findings.sentiment.pos, findings.sentiment.neu,
            findings.sentiment.neg) == (0.0, 0.0, 1.0, 0.0)
    assert findings.hits == () and findings.text_chars == 0 and not findings.truncated


def test_score_batch_keeps_order_and_analysed_at() -> None:
    """score_batch scores each event in order with the same analysed_at."""
    events = [event("doge"), event("nothing here", collected_at=2), event("DOGE doge")]
    batch = ANALYZER.score_batch(events, vocabulary("doge"), analysed_at=9)
    assert [len(f.hits) for f in batch] == [1, 0, 2]
    assert [f.collected_at for f in batch] == [1_000, 2, 1_000]
    assert {f.analysed_at for f in batch} == {9}


def test_findings_are_valid_records() -> None:
    """The analyzer's output encodes as JSON that decodes to equal findings."""
    from schemas.codec import decode, encode

    findings = ANALYZER.score(event("I love $DOGE"), vocabulary("doge"), analysed_at=3)
    assert decode(TextFindings, json.loads(encode(findings))) == findings
