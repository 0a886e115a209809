"""The rule condition language: parsed to a small AST, never evaluated with `eval`.

    condition  := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | atom
    atom       := "(" or_expr ")" | PHRASE | TERM | "sentiment" CMP NUMBER
    PHRASE     := "exact words"              TERM := word, $cashtag, #hashtag or @handle
    CMP        := > | >= | < | <= | = | !=

Operators are upper case (so `and` stays a searchable word); terms and phrases match case- and
accent-insensitively. Later issues add query operators and finding functions to this grammar.
A syntax error raises ConditionSyntaxError with the 0-based character position.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

COMPARATORS = (">=", "<=", "!=", ">", "<", "=")
MAX_DEPTH = 64  # nesting of parentheses and NOTs; deeper input is refused, not recursed into
# A word of the text as matching sees it: an optional $ # @ prefix, letters/digits with their
# combining accents, inner apostrophes. The text analysis tokenises with the same pattern.
WORD = re.compile(r"[#$@]?[\w\u0300-\u036f]+(?:['’][\w\u0300-\u036f]+)*")
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<lparen>\() | (?P<rparen>\))
      | (?P<cmp>>=|<=|!=|>|<|=)
      | (?P<phrase>"[^"]*")
      | (?P<number>[-+]?\d+(?:\.\d+)?(?![\w]))
      | (?P<word>[#$@]?[^\s()"<>=!]+)""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT"}


class ConditionSyntaxError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Term:
    text: str  # normalised: NFKC, case-folded, accents removed


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]  # normalised like Term


@dataclass(frozen=True)
class SentimentCompare:
    op: str
    value: float


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Term | Phrase | SentimentCompare | And | Or | Not


def normalize(text: str) -> str:
    """Matching form of a text: NFKC, case-folded, accents removed."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def parse(source: str) -> Node:
    """Parse a condition; identical strings share one AST."""
    return _Parser(source).parse()


def terms_of(node: Node) -> tuple[set[str], set[tuple[str, ...]]]:
    """Every term and phrase a condition can match: the vocabulary the text analysis looks for."""
    terms: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Term):
            terms.add(current.text)
        elif isinstance(current, Phrase):
            phrases.add(current.words)
        elif isinstance(current, (And, Or)):
            stack.extend(current.items)
        elif isinstance(current, Not):
            stack.append(current.item)
    return terms, phrases


def phrase_words(text: str) -> tuple[str, ...]:
    """A phrase as the words it must match, compared without $ # @ and punctuation."""
    return tuple(normalize(m.group()).lstrip("#$@") for m in WORD.finditer(text))


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = list(_tokenize(source))
        self.index = 0
        self.depth = 0

    def _deeper(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionSyntaxError(f"nested deeper than {MAX_DEPTH} levels", pos)

    def parse(self) -> Node:
        if not self.tokens:
            raise ConditionSyntaxError("empty condition", 0)
        node = self._or()
        if self.index < len(self.tokens):
            kind, text, pos = self.tokens[self.index]
            raise ConditionSyntaxError(f"unexpected {text!r}", pos)
        return node

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ConditionSyntaxError("unexpected end of condition", len(self.source))
        self.index += 1
        return token

    def _at_keyword(self, keyword: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == "word" and token[1] == keyword

    def _or(self) -> Node:
        return self._chain("OR", self._and, Or)

    def _and(self) -> Node:
        return self._chain("AND", self._not, And)

    def _chain(self, keyword: str, operand, combine) -> Node:
        """operand (keyword operand)*: one node, or `combine` of them all."""
        items = [operand()]
        while self._at_keyword(keyword):
            self.index += 1
            items.append(operand())
        return items[0] if len(items) == 1 else combine(tuple(items))

    def _not(self) -> Node:
        if self._at_keyword("NOT"):
            self._deeper(self.tokens[self.index][2])
            self.index += 1
            node = Not(self._not())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self) -> Node:
        kind, text, pos = self._take()
        if kind == "lparen":
            self._deeper(pos)
            node = self._or()
            self.depth -= 1
            closing = self._peek()
            if closing is None or closing[0] != "rparen":
                raise ConditionSyntaxError("'(' is never closed", pos)
            self.index += 1
            return node
        if kind == "phrase":
            words = phrase_words(text[1:-1])
            if not words:
                raise ConditionSyntaxError("empty phrase", pos)
            return Term(words[0]) if len(words) == 1 else Phrase(words)
        if kind == "word" and text.lower() == "sentiment" and self._next_is("cmp"):
            return self._sentiment()
        if kind == "number" or (kind == "word" and text not in _KEYWORDS):
            return Term(normalize(text))  # a bare number is a term: "halving AND 2024"
        raise ConditionSyntaxError(f"expected a term, phrase or '(' but found {text!r}", pos)

    def _next_is(self, kind: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == kind

    def _sentiment(self) -> Node:
        _, op, _ = self._take()
        kind, text, pos = self._take()
        if kind != "number":
            raise ConditionSyntaxError(f"sentiment {op} needs a number, found {text!r}", pos)
        value = float(text)
        if not -1.0 <= value <= 1.0:
            raise ConditionSyntaxError("sentiment is compared with a number in -1..1", pos)
        return SentimentCompare(op, value)


def _tokenize(source: str):
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            if source[pos] == '"':
                raise ConditionSyntaxError("unterminated phrase", pos)
            raise ConditionSyntaxError(f"unexpected character {source[pos]!r}", pos)
        kind = match.lastgroup or ""
        if kind != "space":
            yield kind, match.group(), pos
        pos = match.end()
