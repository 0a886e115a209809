"""The rule condition language: parsed to a small AST, never evaluated with `eval`.

    condition  := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | near_expr
    near_expr  := atom ("NEAR/" N atom)*          both sides positional (see below)
    atom       := "(" or_expr ")" | PHRASE | TERM | WILDCARD | FIELD ":" VALUE
                | "sentiment" CMP NUMBER | "entity" "(" (WORD | PHRASE) ")"
                | "classifier" "(" PHRASE ")" CMP NUMBER
    PHRASE     := "exact words", the last one may end in *
    TERM       := a word, $cashtag, #hashtag or @handle     WILDCARD := crypt*
    FIELD      := author | platform | lang | source | hashtag | domain
    CMP        := > | >= | < | <= | = | !=

Operators are upper case (so `and` stays a searchable word). Terms and phrases match whole words,
case- and accent-insensitively, and punctuation or line breaks between the words of a phrase do
not matter. `a NEAR/3 b` holds when at most 3 words separate an occurrence of a and one of b,
in either order; its sides are terms, phrases, wildcards or OR-groups of them (positional
queries). `entity(person)` asks for an entity of a type, `entity("Tesla")` for one by name;
`classifier("spam") > 0.9` compares a classifier's score (false when that model is disabled).
A syntax error raises ConditionSyntaxError with the 0-based character position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from schemas.textnorm import SIGILS, normalize, words

COMPARATORS = (">=", "<=", "!=", ">", "<", "=")
MAX_DEPTH = 64  # nesting of parentheses and NOTs; deeper input is refused, not recursed into
MAX_NEAR = 100
MIN_WILDCARD_STEM = 2  # "c*" would match a tenth of all words
FIELDS = ("author", "platform", "lang", "source", "hashtag", "domain")
ENTITY_TYPES = (
    "name", "person", "org", "brand", "product", "place", "account", "ticker",
    "url", "domain", "mention", "hashtag", "cashtag", "emoji",
)
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<lparen>\() | (?P<rparen>\))
      | (?P<cmp>>=|<=|!=|>|<|=)
      | (?P<phrase>"[^"]*")
      | (?P<near>NEAR/\d+(?![\w/]))
      | (?P<number>[-+]?\d+(?:\.\d+)?(?![\w]))
      | (?P<word>[^\s()"<>=!]+)""",
    re.VERBOSE,
)
_FIELD = re.compile(rf"^({'|'.join(FIELDS)}):(.*)$", re.IGNORECASE)
_KEYWORDS = {"AND", "OR", "NOT"}


class ConditionSyntaxError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Term:
    text: str  # one word in matching form, its sigil kept ("$doge" only matches the cashtag)
    wildcard: bool = False  # matches every word that starts with `text`

    @property
    def label(self) -> str:
        return self.text + ("*" if self.wildcard else "")


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]  # in matching form, without sigils
    wildcard: bool = False  # the last word is a prefix

    @property
    def label(self) -> str:
        return " ".join(self.words) + ("*" if self.wildcard else "")


@dataclass(frozen=True)
class Field:
    name: str  # one of FIELDS
    value: str  # in matching form; for author and source a trailing * makes it a prefix


@dataclass(frozen=True)
class SentimentCompare:
    op: str
    value: float


@dataclass(frozen=True)
class ClassifierCompare:
    name: str
    op: str
    value: float


@dataclass(frozen=True)
class EntityRef:
    type: str | None = None  # entity(person)
    name: str | None = None  # entity("Tesla"), in matching form


@dataclass(frozen=True)
class Near:
    left: Node
    right: Node
    distance: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Term | Phrase | Field | SentimentCompare | ClassifierCompare | EntityRef | Near | And | Or | Not
Pattern = Term | Phrase  # what the text scan looks for


@lru_cache(maxsize=65536)
def parse(source: str) -> Node:
    """Parse a condition; identical strings share one AST."""
    return _Parser(source).parse()


def patterns_of(node: Node) -> set[Pattern]:
    """Every term and phrase a condition can match: what the text scan must look for."""
    found: set[Pattern] = set()
    for current in walk(node):
        if isinstance(current, (Term, Phrase)):
            found.add(current)
        elif isinstance(current, EntityRef) and current.name:
            found.add(text_pattern(current.name, keep_sigil=False))
    return found


def walk(node: Node):
    """Every node of a condition, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, (And, Or)):
            stack.extend(current.items)
        elif isinstance(current, Not):
            stack.append(current.item)
        elif isinstance(current, Near):
            stack.extend((current.left, current.right))


def positive(node: Node):
    """The nodes a condition uses positively: every node not under a NOT (what an alert's
    evidence shows)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, (And, Or)):
            stack.extend(current.items)
        elif isinstance(current, Near):
            stack.extend((current.left, current.right))


def text_pattern(text: str, keep_sigil: bool = True, wildcard: bool = False) -> Pattern | None:
    """A term when `text` is one word, else a phrase of its words; None when it has no words."""
    found = words(text)
    if not found:
        return None
    if len(found) == 1:
        return Term(found[0] if keep_sigil else found[0].lstrip(SIGILS), wildcard)
    return Phrase(tuple(word.lstrip(SIGILS) for word in found), wildcard)


def is_positional(node: Node) -> bool:
    if isinstance(node, (Term, Phrase, Near)):
        return True
    return isinstance(node, Or) and all(is_positional(item) for item in node.items)


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
            if kind == "rparen":
                raise ConditionSyntaxError("')' has no matching '('", pos)
            raise ConditionSyntaxError(f"expected AND, OR or NEAR/n before {text!r}", pos)
        return node

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ConditionSyntaxError("unexpected end of condition", len(self.source))
        self.index += 1
        return token

    def _next_is(self, kind: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == kind

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
        return self._near()

    def _near(self) -> Node:
        start = self._peek()
        node = self._atom()
        while self._next_is("near"):
            _, text, pos = self._take()
            distance = int(text.split("/")[1])
            if distance > MAX_NEAR:
                raise ConditionSyntaxError(f"NEAR distance is at most {MAX_NEAR} words", pos)
            right_start = self._peek()
            right = self._atom()
            for side, token in ((node, start), (right, right_start)):
                if not is_positional(side):
                    raise ConditionSyntaxError(
                        "NEAR joins terms, phrases, wildcards or OR-groups of them", token[2])
            node = Near(node, right, distance)
        return node

    def _atom(self) -> Node:
        kind, text, pos = self._take()
        if kind == "lparen":
            self._deeper(pos)
            node = self._or()
            self.depth -= 1
            if not self._next_is("rparen"):
                raise ConditionSyntaxError("'(' is never closed", pos)
            self.index += 1
            return node
        if kind == "phrase":
            return self._text(text[1:-1], pos, keep_sigil=False)
        if kind == "near":
            raise ConditionSyntaxError("NEAR/n needs a term on its left", pos)
        if kind == "word" and text.lower() == "sentiment" and self._next_is("cmp"):
            return self._sentiment()
        if kind == "word" and text.lower() == "entity" and self._next_is("lparen"):
            return self._entity(pos)
        if kind == "word" and text.lower() == "classifier" and self._next_is("lparen"):
            return self._classifier(pos)
        if kind == "word" and (field := _FIELD.match(text)):
            return self._field(field.group(1).lower(), field.group(2), pos)
        if kind == "number" or (kind == "word" and text not in _KEYWORDS):
            return self._text(text, pos, keep_sigil=True)  # a bare number is a term: "halving AND 2024"
        if kind == "rparen":
            raise ConditionSyntaxError("expected a term, phrase or '(' but found ')'", pos)
        raise ConditionSyntaxError(f"expected a term, phrase or '(' but found {text!r}", pos)

    def _text(self, text: str, pos: int, keep_sigil: bool) -> Node:
        wildcard = text.endswith("*")
        body = text.rstrip("*") if wildcard else text
        if "*" in body:
            raise ConditionSyntaxError("'*' is allowed only at the end of a word", pos + body.index("*"))
        pattern = text_pattern(body, keep_sigil, wildcard)
        if pattern is None:
            raise ConditionSyntaxError("empty phrase" if not keep_sigil else f"{text!r} has no letters or digits", pos)
        if wildcard:
            last = pattern.text if isinstance(pattern, Term) else pattern.words[-1]
            if len(last.lstrip(SIGILS)) < MIN_WILDCARD_STEM or not body[-1:].isalnum():
                raise ConditionSyntaxError(
                    f"a wildcard needs at least {MIN_WILDCARD_STEM} letters or digits before '*'", pos)
        return pattern

    def _sentiment(self) -> Node:
        op, value = self._comparison("sentiment", -1.0)
        return SentimentCompare(op, value)

    def _comparison(self, what: str, low: float) -> tuple[str, float]:
        """CMP NUMBER, the number in low..1."""
        kind, op, pos = self._take()
        if kind != "cmp":
            raise ConditionSyntaxError(f"{what} needs a comparison (> >= < <= = !=), found {op!r}", pos)
        kind, text, pos = self._take()
        if kind != "number":
            raise ConditionSyntaxError(f"{what} {op} needs a number, found {text!r}", pos)
        value = float(text)
        if not low <= value <= 1.0:
            raise ConditionSyntaxError(f"{what} is compared with a number in {low:g}..1", pos)
        return op, value

    def _classifier(self, pos: int) -> Node:
        self._take()  # (
        kind, text, arg_pos = self._take()
        if kind != "phrase" or not text[1:-1].strip():
            raise ConditionSyntaxError('classifier() takes a model name in quotes, e.g. classifier("spam")', arg_pos)
        if not self._next_is("rparen"):
            raise ConditionSyntaxError("classifier( is never closed", pos)
        self.index += 1
        op, value = self._comparison(f"classifier({text})", 0.0)
        return ClassifierCompare(text[1:-1].strip().lower(), op, value)

    def _entity(self, pos: int) -> Node:
        self._take()  # (
        kind, text, arg_pos = self._take()
        if kind == "phrase":
            name = normalize(text[1:-1]).strip()
            if not words(name):
                raise ConditionSyntaxError("entity(\"...\") needs a name", arg_pos)
            node = EntityRef(name=name)
        elif kind == "word" and text.lower() in ENTITY_TYPES:
            node = EntityRef(type=text.lower())
        else:
            raise ConditionSyntaxError(
                f"entity() takes a \"name\" or one of {', '.join(ENTITY_TYPES)}", arg_pos)
        if not self._next_is("rparen"):
            raise ConditionSyntaxError("entity( is never closed", pos)
        self.index += 1
        return node

    def _field(self, name: str, value: str, pos: int) -> Node:
        if not value and self._next_is("phrase"):
            value = self._take()[1][1:-1]
        value = normalize(value).strip()
        if name in ("author", "hashtag"):
            value = value.lstrip("@#")
        if not value or value == "*":
            raise ConditionSyntaxError(f"{name}: needs a value", pos)
        if name == "hashtag":
            if not re.fullmatch(r"[^\W]+", value):
                raise ConditionSyntaxError("hashtag: takes one word", pos)
            return Term("#" + value)
        return Field(name, value)


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
