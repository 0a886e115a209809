"""The rule condition language: parsed to a small AST, never evaluated with `eval`.

    condition  := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | near_expr
    near_expr  := atom ("NEAR/" N atom)*          both sides positional (see below)
    atom       := "(" or_expr ")" | PHRASE | TERM | WILDCARD | FIELD ":" VALUE
                | MEASURE CMP NUMBER | "entity" "(" (WORD | PHRASE) ")"
                | "classifier" "(" PHRASE ")" CMP NUMBER
                | "object" "(" PHRASE ")" [CMP NUMBER] | "scene" "(" PHRASE ")" [CMP NUMBER]
                | "image_match" "(" PHRASE ")" | "audio_match" "(" PHRASE ")" | "said" "(" PHRASE ")"
    PHRASE     := "exact words", the last one may end in *
    TERM       := a word, $cashtag, #hashtag or @handle     WILDCARD := crypt*
    FIELD      := author | platform | lang | language | source | hashtag | domain | time
    MEASURE    := sentiment | faces | speech_share | hour
    CMP        := > | >= | < | <= | = | !=

Operators are upper case (so `and` stays a searchable word). Terms and phrases match whole words,
case- and accent-insensitively, and punctuation or line breaks between the words of a phrase do
not matter. `a NEAR/3 b` holds when at most 3 words separate an occurrence of a and one of b,
in either order; its sides are terms, phrases, wildcards or OR-groups of them (positional
queries). `entity(person)` asks for an entity of a type, `entity("Tesla")` for one by name;
`classifier("spam") > 0.9` compares a classifier's score (false when that model is disabled).

What was seen and heard in the content's media:
    object("person") >= 2     the most objects of a COCO class in one image or video frame
                              (bare `object("dog")` means at least one)
    faces >= 1                the most faces in one image or frame
    scene("seashore") > 0.3   the best score of a scene label (bare: among the top labels)
    image_match("logo")       a tracked reference image, by ref id or name
    audio_match("jingle")     a tracked reference clip, by ref id or name
    said("ask not")           words heard in the speech of an audio or video part
    speech_share > 0.5        the share of an audio part that is speech
    hour >= 9, time:09:00-17:00@Europe/Berlin   when the content was published (UTC by default;
                              a range may wrap midnight: time:22:00-06:00)
A word followed by "(" or by a comparison must be one of these: `colour(x)`, `likes > 5` and
`colour:red` are errors, not silently searched words (quote them to search: "likes > 5").
A syntax error raises ConditionSyntaxError with the 0-based character position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.textnorm import SIGILS, normalize, words

COMPARATORS = (">=", "<=", "!=", ">", "<", "=")
MAX_DEPTH = 64  # nesting of parentheses and NOTs; deeper input is refused, not recursed into
MAX_NEAR = 100
MIN_WILDCARD_STEM = 2  # "c*" would match a tenth of all words
FIELDS = ("author", "platform", "lang", "language", "source", "hashtag", "domain", "time")
# A number of the fused findings: its lowest and highest meaningful value.
MEASURES = {"sentiment": (-1.0, 1.0), "faces": (0.0, 1000.0), "speech_share": (0.0, 1.0), "hour": (0.0, 23.0)}
# Functions that take one quoted argument; those with a range may be compared with a number.
FUNCTIONS = {"entity": None, "classifier": (0.0, 1.0), "object": (0.0, 1000.0), "scene": (0.0, 1.0),
             "image_match": None, "audio_match": None, "said": None}
_EXAMPLES = {"classifier": "spam", "object": "person", "scene": "seashore", "image_match": "logo",
             "audio_match": "jingle", "said": "ask not"}
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
_NAMED = re.compile(r"^([a-z][a-z_]*):(?!//)(.*)$", re.IGNORECASE)  # looks like a field, "https://" excepted
_IDENTIFIER = re.compile(r"^[a-z][a-z_]*$", re.IGNORECASE)
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:@(\S+))?$")
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
class Measure:
    """A number of the fused findings compared with a constant: `faces >= 1`, `object("person")
    >= 2`, `scene("seashore") > 0.3`, `speech_share > 0.5`, `hour >= 9`."""

    name: str  # a MEASURES key, or "object" / "scene"
    arg: str | None  # the object class or scene label, in matching form
    op: str
    value: float


@dataclass(frozen=True)
class Seen:
    """Something the media analysis names: a tracked image or clip (by ref id or name), or a scene
    label among the top labels."""

    name: str  # "image_match", "audio_match" or "scene"
    arg: str  # in matching form


@dataclass(frozen=True)
class Said:
    """Words heard in the speech of an audio part (transcribed or spotted)."""

    pattern: Pattern


@dataclass(frozen=True)
class TimeOfDay:
    """Published between two times of day (minutes after midnight, end excluded) in a zone."""

    start: int
    end: int
    zone: str = "UTC"


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


Pattern = Term | Phrase  # what the text scan looks for
Node = (Term | Phrase | Field | SentimentCompare | ClassifierCompare | EntityRef | Measure | Seen | Said
        | TimeOfDay | Near | And | Or | Not)


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
        elif isinstance(current, Said):
            found.add(current.pattern)
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
        if kind == "word" and self._next_is("cmp"):
            return self._measure(text, pos)
        if kind == "word" and self._next_is("lparen") and (text.lower() in FUNCTIONS or self._adjacent(text, pos)):
            return self._function(text.lower(), pos)
        if kind == "word" and (field := _FIELD.match(text)):
            return self._field(field.group(1).lower(), field.group(2), pos)
        if kind == "word" and (named := _NAMED.match(text)):
            raise ConditionSyntaxError(
                f"unknown field {named.group(1)!r}; fields are {', '.join(FIELDS)} "
                f"(quote it to search for the text: \"{text}\")", pos)
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

    def _adjacent(self, text: str, pos: int) -> bool:
        """`name(` written as a call: an unknown function, not a word followed by a group."""
        return bool(_IDENTIFIER.match(text)) and self.tokens[self.index][2] == pos + len(text)

    def _measure(self, text: str, pos: int) -> Node:
        name = text.lower()
        if name not in MEASURES:
            raise ConditionSyntaxError(
                f"unknown measure {text!r}; measures are {', '.join(MEASURES)} "
                f"(quote it to search for the text: \"{text}\")", pos)
        op, value = self._comparison(name, MEASURES[name])
        if name == "sentiment":
            return SentimentCompare(op, value)
        return Measure(name, None, op, value)

    def _comparison(self, what: str, bounds: tuple[float, float]) -> tuple[str, float]:
        """CMP NUMBER, the number within bounds."""
        kind, op, pos = self._take()
        if kind != "cmp":
            raise ConditionSyntaxError(f"{what} needs a comparison (> >= < <= = !=), found {op!r}", pos)
        kind, text, pos = self._take()
        if kind == "phrase":
            raise ConditionSyntaxError(f"type mismatch: {what} is a number and cannot be compared with text {text}", pos)
        if kind != "number":
            raise ConditionSyntaxError(f"{what} {op} needs a number, found {text!r}", pos)
        value = float(text)
        low, high = bounds
        if not low <= value <= high:
            raise ConditionSyntaxError(f"{what} is compared with a number in {low:g}..{high:g}", pos)
        return op, value

    def _function(self, name: str, pos: int) -> Node:
        if name not in FUNCTIONS:
            raise ConditionSyntaxError(f"unknown function {name!r}; functions are {', '.join(FUNCTIONS)}", pos)
        self._take()  # (
        if name == "entity":
            node = self._entity_arg()
        else:
            kind, text, arg_pos = self._take()
            if kind != "phrase" or not text[1:-1].strip():
                raise ConditionSyntaxError(
                    f'{name}() takes one argument in quotes, e.g. {name}("{_EXAMPLES[name]}")', arg_pos)
            arg = text[1:-1]
        if not self._next_is("rparen"):
            raise ConditionSyntaxError(f"{name}( is never closed", pos)
        self.index += 1
        if name == "entity":
            return node
        call = f'{name}("{arg}")'
        if name == "said":
            pattern = text_pattern(arg, keep_sigil=False)
            if pattern is None:
                raise ConditionSyntaxError("said() needs words", pos)
            return Said(pattern)
        label = normalize(arg).strip()
        if name == "classifier":
            return ClassifierCompare(label, *self._comparison(call, FUNCTIONS[name]))
        if name == "object":
            if not self._next_is("cmp"):
                return Measure("object", label, ">=", 1.0)
            return Measure("object", label, *self._comparison(call, FUNCTIONS[name]))
        if name == "scene" and self._next_is("cmp"):
            return Measure("scene", label, *self._comparison(call, FUNCTIONS[name]))
        return Seen(name, label)

    def _entity_arg(self) -> Node:
        kind, text, arg_pos = self._take()
        if kind == "phrase":
            name = normalize(text[1:-1]).strip()
            if not words(name):
                raise ConditionSyntaxError("entity(\"...\") needs a name", arg_pos)
            return EntityRef(name=name)
        if kind == "word" and text.lower() in ENTITY_TYPES:
            return EntityRef(type=text.lower())
        raise ConditionSyntaxError(f"entity() takes a \"name\" or one of {', '.join(ENTITY_TYPES)}", arg_pos)

    def _field(self, name: str, value: str, pos: int) -> Node:
        if not value and self._next_is("phrase"):
            value = self._take()[1][1:-1]
        if name == "time":
            return _time_of_day(value.strip(), pos)
        name = "lang" if name == "language" else name
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


def _time_of_day(value: str, pos: int) -> TimeOfDay:
    match = _TIME_RANGE.match(value)
    if match is None:
        raise ConditionSyntaxError("time: takes HH:MM-HH:MM, optionally @Zone (time:09:00-17:00@Europe/Berlin)", pos)
    h1, m1, h2, m2 = (int(group) for group in match.groups()[:4])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ConditionSyntaxError(f"time: {value!r} is not a time of day", pos)
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ConditionSyntaxError("time: an empty range (start equals end)", pos)
    zone = match.group(5) or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConditionSyntaxError(f"time: unknown time zone {zone!r}", pos) from exc
    return TimeOfDay(start, end, zone)


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
