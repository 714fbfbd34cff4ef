"""The condition language's syntax: tokens, the syntax tree and a recursive-descent parser (no eval, ever).

Grammar, lowest binding first: `or`, `and`, `not`, comparisons (== != < <= > >= in, not in, is set, is missing),
`+ -`, `* /`, then numbers, true/false, 'quoted text', [lists], (parentheses) and names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Value = bool | int | float | str | None


class ConditionError(ValueError):
    """A condition that cannot be used: where (column), which field if any, and why."""

    def __init__(self, message: str, *, field: str | None = None, column: int | None = None) -> None:
        where = f" (column {column})" if column is not None else ""
        super().__init__(f"{message}{where}")
        self.field = field
        self.column = column


# ---------------------------------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
      | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
      | (?P<bad>\S+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "set", "missing", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # number string name op keyword end
    text: str
    column: int


def _tokenize(source: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    position = 0
    source = source.rstrip()
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "bad"
        text = match.group(kind)
        column = match.start(kind) + 1
        if kind == "bad":
            hint = " (use == to compare, >= for at least)" if text.startswith(("=", "=>", "=<")) else ""
            raise ConditionError(f"unknown operator or symbol {text!r}{hint}", column=column)
        if kind == "name" and text.lower() in _KEYWORDS:
            kind, text = "keyword", text.lower()
        tokens.append(_Tok(kind, text, column))
        position = match.end()
    tokens.append(_Tok("end", "", len(source) + 1))
    return tokens


# ---------------------------------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Node:
    column: int


@dataclass(frozen=True)
class Lit(Node):
    value: Value


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Logic(Node):
    op: str  # and / or
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Arith(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str  # == != < <= > >= in notin
    left: Node
    right: Node


@dataclass(frozen=True)
class IsSet(Node):
    operand: Node
    missing: bool


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.index = 0

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.index]

    def take(self) -> _Tok:
        tok = self.tokens[self.index]
        self.index += 1
        return tok

    def at(self, kind: str, *texts: str) -> bool:
        return self.tok.kind == kind and (not texts or self.tok.text in texts)

    def expect(self, kind: str, text: str) -> _Tok:
        if not self.at(kind, text):
            raise ConditionError(f"expected {text!r}, found {self._describe()}", column=self.tok.column)
        return self.take()

    def _describe(self) -> str:
        return "the end of the condition" if self.tok.kind == "end" else repr(self.tok.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ConditionError("the condition is empty", column=1)
        node = self.or_expr()
        if self.tok.kind != "end":
            hint = ""
            if self.tok.kind in ("name", "number", "string"):
                hint = " (missing and/or, or an operator such as == or >=?)"
            raise ConditionError(f"unexpected {self._describe()}{hint}", column=self.tok.column)
        return node

    def or_expr(self) -> Node:
        first = self.tok.column
        operands = [self.and_expr()]
        while self.at("keyword", "or"):
            self.take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Logic(first, "or", tuple(operands))

    def and_expr(self) -> Node:
        first = self.tok.column
        operands = [self.not_expr()]
        while self.at("keyword", "and"):
            self.take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else Logic(first, "and", tuple(operands))

    def not_expr(self) -> Node:
        if self.at("keyword", "not"):
            column = self.take().column
            return Not(column, self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return Compare(tok.column, tok.text, left, self.sum())
        if self.at("keyword", "in"):
            self.take()
            return Compare(tok.column, "in", left, self.sum())
        if self.at("keyword", "not"):
            self.take()
            self.expect("keyword", "in")
            return Compare(tok.column, "notin", left, self.sum())
        if self.at("keyword", "is"):
            self.take()
            if self.at("keyword", "set", "missing"):
                return IsSet(tok.column, left, self.take().text == "missing")
            raise ConditionError(f"expected 'is set' or 'is missing', found {self._describe()}", column=tok.column)
        return left

    def sum(self) -> Node:
        node = self.term()
        while self.at("op", "+", "-"):
            tok = self.take()
            node = Arith(tok.column, tok.text, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.at("op", "*", "/"):
            tok = self.take()
            node = Arith(tok.column, tok.text, node, self.factor())
        return node

    def factor(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Lit(tok.column, float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "string":
            self.take()
            return Lit(tok.column, tok.text[1:-1])
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.take()
            return Lit(tok.column, tok.text == "true")
        if tok.kind == "name":
            self.take()
            return Name(tok.column, tok.text)
        if self.at("op", "-"):
            self.take()
            return Neg(tok.column, self.factor())
        if self.at("op", "("):
            self.take()
            node = self.or_expr()
            self.expect("op", ")")
            return node
        if self.at("op", "["):
            self.take()
            items: list[Node] = []
            while not self.at("op", "]"):
                items.append(self.sum())
                if not self.at("op", "]"):
                    self.expect("op", ",")
            self.take()
            return ListLit(tok.column, tuple(items))
        raise ConditionError(f"expected a field, a value or '(', found {self._describe()}", column=tok.column)



def parse(source: str) -> Node:
    """The syntax tree of a condition; ConditionError names what is wrong and the column."""
    return _Parser(source).parse()
