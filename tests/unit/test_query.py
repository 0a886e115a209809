"""Queries against texts, through the same core as the job and `trackius match`: a table of
expectations, then the properties that keep matching correct and flat as rules grow."""

from __future__ import annotations

import pytest

from schemas.rule import Rule, TrackedEntity
from trackius.settings import Settings
from trackius.textcmd import event_for, match_lines
from udfs.nlp import Nlp
from udfs.query import RuleIndex
from udfs.text import TextAnalyzer

CORE = TextAnalyzer(20_000, Nlp(Settings().nltk_data_dir), classifier=None)


def match(query: str, text: str, **metadata) -> tuple[bool, list[str]]:
    (result,) = match_lines(CORE, query, [text], **metadata)
    return result["match"], result["terms"]


TABLE = [
    # query, text, matches, terms reported as evidence
    ("bitcoin", "Bitcoin is up", True, ["bitcoin"]),
    ("bitcoin", "bitcoins are up", False, []),  # whole words only
    ("bitcoin AND crash", "BITCOIN... crash!", True, ["bitcoin", "crash"]),
    ("bitcoin AND crash", "bitcoin moon", False, []),
    ("bitcoin OR btc", "long $BTC now", True, ["btc"]),
    ("$btc", "I like btc", False, []),  # a cashtag needs its $
    ("$btc", "I like $BTC.", True, ["$btc"]),
    ("#bitcoin", "#Bitcoin to the moon", True, ["#bitcoin"]),
    ("hashtag:bitcoin", "#Bitcoin to the moon", True, ["#bitcoin"]),
    ("hashtag:bitcoin", "bitcoin to the moon", False, []),
    # negation and nesting
    ("bitcoin AND NOT scam", "bitcoin is a scam", False, []),
    ("bitcoin AND NOT scam", "bitcoin is fine", True, ["bitcoin"]),
    ("NOT scam", "all good here", True, []),
    ("NOT NOT scam", "total scam", True, []),  # evidence is what the query asks for positively
    ("(bitcoin OR ethereum) AND (crash OR dump) AND NOT (joke OR satire)",
     "Ethereum dump incoming", True, ["ethereum", "dump"]),
    ("(bitcoin OR ethereum) AND (crash OR dump) AND NOT (joke OR satire)",
     "ethereum dump, satire obviously", False, []),
    ("((a1 OR b1) AND (c1 OR (d1 AND NOT e1)))", "b1 d1", True, ["b1", "d1"]),
    ("((a1 OR b1) AND (c1 OR (d1 AND NOT e1)))", "b1 d1 e1", False, []),
    # phrases, punctuation and line breaks between their words
    ('"to the moon"', "going TO THE MOON!!", True, ["to the moon"]),
    ('"to the moon"', "to the\nmoon", True, ["to the moon"]),
    ('"to the moon"', "moon to the", False, []),
    ('"rock-n-roll"', "rock n roll forever", True, ["rock n roll"]),
    ('"state of the art"', "state-of-the-art tech", True, ["state of the art"]),
    ('"u.s. election"', "the U.S. election results", True, ["u s election"]),
    ("\"don't buy\"", "I say DON'T BUY", True, ["don't buy"]),
    # NEAR/n: words between, either order, across punctuation and line breaks
    ("bitcoin NEAR/3 crash", "bitcoin will surely crash", True, ["bitcoin", "crash"]),
    ("bitcoin NEAR/1 crash", "bitcoin will surely crash", False, []),
    ("bitcoin NEAR/2 crash", "crash, said he: bitcoin", True, ["crash", "bitcoin"]),
    ("bitcoin NEAR/2 crash", "bitcoin.\n\nThen a crash", True, ["bitcoin", "crash"]),
    ("bitcoin NEAR/0 crash", "bitcoin crash", True, ["bitcoin", "crash"]),
    ("(bitcoin OR btc) NEAR/3 (crash* OR dump)", "BTC is crashing hard", True, ["btc", "crash*"]),
    ('"elon musk" NEAR/5 doge*', "Elon Musk tweeted again about Dogecoin", True, ["elon musk", "doge*"]),
    ("bitcoin NEAR/3 crash AND NOT satire", "bitcoin crash", True, ["bitcoin", "crash"]),
    # wildcards
    ("crypt*", "Cryptocurrency news", True, ["crypt*"]),
    ("crypt*", "encrypted mail", False, []),  # a wildcard is a word prefix
    ('"bitcoin crash*"', "bitcoin crashes again", True, ["bitcoin crash*"]),
    # accents, case, Unicode forms
    ("cafe", "Café au lait", True, ["cafe"]),
    ("café", "CAFE", True, ["cafe"]),
    ("strasse", "Die Straße ist lang", True, ["strasse"]),
    ("ｂｉｔｃｏｉｎ", "bitcoin", True, ["bitcoin"]),  # full-width folds by NFKC
    ("naïve", "Naive approach", True, ["naive"]),
    # emoji and non-Latin scripts
    ("moon", "🚀🚀 moon 🌕", True, ["moon"]),
    ("биткоин", "Биткоин падает", True, ["биткоин"]),
    ("биткоин NEAR/1 падает", "Биткоин, говорят, падает", True, ["биткоин", "падает"]),
    ("κρυπτο*", "Τα κρυπτονομίσματα πέφτουν", True, ["κρυπτο*"]),
    ("比特币", "我今天买了比特币。", True, ["比 特 币"]),
    ("比特币", "我今天买了以太坊。", False, []),
    ("بيتكوين", "سعر بيتكوين اليوم", True, ["بيتكوين"]),
    # field filters
    ("platform:x AND doge", "doge", False, []),
    ("author:elonmusk AND doge", "doge", True, ["doge"]),
    ("author:elon* AND doge", "doge", True, ["doge"]),
    ("domain:bit.ly", "claim now https://bit.ly/abc", True, []),
    ("domain:bit.ly", "claim now at free-prize.xyz", False, []),
    ("lang:de AND auto", "Das Auto ist sehr schnell und die Straße ist lang", True, ["auto"]),
    ("lang:de AND auto", "The auto industry is doing very well this year", False, []),
    # lower-case operators are words
    ('"rock and roll"', "Rock and Roll", True, ["rock and roll"]),
    ("rock AND roll", "roll, rock", True, ["roll", "rock"]),
    ("and", "this and that", True, ["and"]),  # lower-case operators are words
]


@pytest.mark.parametrize(("query", "text", "expected", "terms"), TABLE)
def test_query_table(query: str, text: str, expected: bool, terms: list[str]) -> None:
    metadata = {"author": "@ElonMusk"} if "author:" in query else {}
    assert match(query, text, **metadata) == (expected, terms)


def test_classifier_scores_are_rule_conditions() -> None:
    """classifier("spam") compares the score the job computed; a disabled model never satisfies it."""
    from dataclasses import replace

    from udfs.query import Facts
    index = RuleIndex([Rule("scam", 1, condition='classifier("spam") > 0.9 AND prize')])
    findings = CORE.analyse(event_for("claim your prize", 1), index)
    assert findings.classifiers == {}  # this core has no classifier
    assert not index.fired(Facts(findings, "rss", "", "cli"))
    scored = replace(findings, classifiers={"spam": 0.95})
    assert [r.rule.rule_id for r in index.fired(Facts(scored, "rss", "", "cli"))] == ["scam"]


def test_hits_point_into_the_original_text() -> None:
    """Spans are offsets into the text as written, even when folding changes its length."""
    text = "ﬁnal Straße: BITCOIN"
    index = RuleIndex([Rule("r", 1, condition='"final strasse" OR bitcoin')])
    findings = CORE.analyse(event_for(text, 1), index)
    assert [(hit.term, text[hit.start:hit.end]) for hit in findings.hits] == [
        ("final strasse", "ﬁnal Straße"), ("bitcoin", "BITCOIN")]


def test_tracked_names_become_typed_entities() -> None:
    """A rule's gazetteer and its $/@ terms give typed entities with spans and canonical names."""
    rule = Rule("t", 1, condition="$tsla OR @elonmusk",
                entities=(TrackedEntity("Tesla", "brand", ("Tesla Motors", "TSLA")),))
    text = "Tesla Motors and $TSLA by @ElonMusk"
    found = CORE.analyse(event_for(text, 1), RuleIndex([rule])).entities
    typed = {(e.type, text[e.start:e.end], e.name) for e in found if e.name}
    assert typed == {("brand", "Tesla Motors", "Tesla"), ("brand", "$TSLA", "Tesla"),
                     ("ticker", "$TSLA", "$tsla"), ("account", "@ElonMusk", "@elonmusk")}


def test_entity_rule_by_tracked_alias() -> None:
    """entity("Tesla") fires on any alias of the tracked name."""
    rule = Rule("t", 1, condition='entity("Tesla")', entities=(TrackedEntity("Tesla", "brand", ("TSLA",)),))
    index = RuleIndex([rule])
    findings = CORE.analyse(event_for("tsla is flying", 1), index)
    from udfs.query import Facts
    assert index.fired(Facts(findings, "rss", "", "cli"))


def test_names_run_only_when_a_candidate_rule_needs_them() -> None:
    """The NE chunker runs for texts an entity(...) rule could match, and only for them."""
    index = RuleIndex([Rule("n", 1, condition='entity("Angela Merkel") AND berlin')])
    with_names = CORE.analyse(event_for("Angela Merkel visited Berlin today.", 1), index)
    without = CORE.analyse(event_for("Angela Merkel visited Paris today.", 2), index)
    assert any(e.type == "name" and e.text == "Angela Merkel" for e in with_names.entities)
    assert not any(e.type == "name" for e in without.entities)


def test_only_candidate_rules_are_evaluated() -> None:
    """With 10,000 rules a text that hits one term evaluates that term's rules and the
    unanchored ones, not all of them."""
    rules = [Rule(f"r{i}", 1, condition=f"term{i} AND (other{i} OR NOT x{i})") for i in range(10_000)]
    rules.append(Rule("anywhere", 1, condition="NOT zzz"))
    index = RuleIndex(rules)
    findings = CORE.analyse(event_for("term42 appears", 1), index)
    assert [rule.rule.rule_id for rule in index.candidates(findings.hits, findings.entities)] == ["r42", "anywhere"]


def test_same_term_in_many_rules_is_one_key() -> None:
    index = RuleIndex([Rule(f"r{i}", 1, condition="doge") for i in range(100)])
    assert index.scanner.size == 1
