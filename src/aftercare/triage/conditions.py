"""A small, safe condition language for triage rules, parsed here (nothing is ever passed to eval).

    temp_c >= fever_c and day <= 21
    knee_redness == spreading or (swelling_trend == worse and knee_warmth)
    survey in [mo3, mo6] and nrs_drop < 2 and koos_jr_gain < 15
    pain_now > baseline.nrs_pain + 1
    temp_c is set

Grammar (lowest binding first): `or`, `and`, `not`, comparisons (== != < <= > >= in, not in, is set, is missing),
`+ -`, `* /`, then numbers, true/false, 'quoted text', [lists], (parentheses) and names. A name is a field
(fields.py), a constant from the rules file, or, next to an enum/id field, one of its values (`== spreading`).

Missing answers: a comparison with a missing value is *unknown*; `and`/`or`/`not` follow three-valued logic and a
rule fires only when its condition is *true*. So `temp_c >= 38` never fires without a temperature, and neither does
`not (temp_c < 38)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aftercare.triage.condition_syntax import (
    Arith,
    Compare,
    ConditionError,
    IsSet,
    ListLit,
    Lit,
    Logic,
    Name,
    Neg,
    Node,
    Not,
    Value,
    parse,
)
from aftercare.triage.fields import FieldSpec

__all__ = ["Condition", "ConditionError", "compile_condition"]

# ---------------------------------------------------------------------------------------------------- types

# Types: "bool", "number", "str", "enum:<field>", "id", "list:<type>"


@dataclass
class _Checker:
    fields: Mapping[str, FieldSpec]
    constants: Mapping[str, bool | int | float | str]
    used: set[str] = field(default_factory=set)

    def check(self, node: Node) -> tuple[Node, str]:
        """The node with constants and bare values resolved, and its type."""
        if isinstance(node, Lit):
            return node, _literal_type(node.value)
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, ListLit):
            raise ConditionError("a [list] can only follow 'in'", column=node.column)
        if isinstance(node, Not):
            operand, kind = self.check(node.operand)
            self.want_bool(operand, kind, "'not'")
            return Not(node.column, operand), "bool"
        if isinstance(node, Neg):
            operand, kind = self.check(node.operand)
            self.want_number(operand, kind, "'-'")
            return Neg(node.column, operand), "number"
        if isinstance(node, Logic):
            operands = []
            for item in node.operands:
                checked, kind = self.check(item)
                self.want_bool(checked, kind, f"'{node.op}'")
                operands.append(checked)
            return Logic(node.column, node.op, tuple(operands)), "bool"
        if isinstance(node, Arith):
            left, lkind = self.check(node.left)
            right, rkind = self.check(node.right)
            self.want_number(left, lkind, f"'{node.op}'")
            self.want_number(right, rkind, f"'{node.op}'")
            return Arith(node.column, node.op, left, right), "number"
        if isinstance(node, IsSet):
            if not isinstance(node.operand, Name) or node.operand.name not in self.fields:
                raise ConditionError("'is set' / 'is missing' needs a field name before it", column=node.column)
            operand, _ = self.check(node.operand)
            return IsSet(node.column, operand, node.missing), "bool"
        assert isinstance(node, Compare)
        return self.compare(node)

    def name(self, node: Name) -> tuple[Node, str]:
        if node.name in self.constants:
            value = self.constants[node.name]
            return Lit(node.column, value), _literal_type(value)
        spec = self.fields.get(node.name)
        if spec is None:
            raise ConditionError(f"unknown field {node.name!r}{_suggest(node.name, self.fields)}",
                                 field=node.name, column=node.column)
        self.used.add(node.name)
        if spec.kind == "enum":
            return node, f"enum:{node.name}"
        return node, spec.kind

    def compare(self, node: Compare) -> tuple[Node, str]:
        if node.op in ("in", "notin"):
            left, lkind = self.check(node.left)
            if not isinstance(node.right, ListLit):
                raise ConditionError("'in' needs a [list] of values after it", column=node.column)
            items = tuple(self.value_for(item, lkind, node.left) for item in node.right.items)
            return Compare(node.column, node.op, left, ListLit(node.right.column, items)), "bool"
        # A bare word next to an enum/id field is one of its values.
        if isinstance(node.right, Name) and self._is_value_word(node.right):
            left, lkind = self.check(node.left)
            right = self.value_for(node.right, lkind, node.left)
            return self.finish_compare(node, left, lkind, right, lkind)
        if isinstance(node.left, Name) and self._is_value_word(node.left):
            right, rkind = self.check(node.right)
            left = self.value_for(node.left, rkind, node.right)
            return self.finish_compare(node, left, rkind, right, rkind)
        left, lkind = self.check(node.left)
        right, rkind = self.check(node.right)
        return self.finish_compare(node, left, lkind, right, rkind)

    def _is_value_word(self, node: Name) -> bool:
        return node.name not in self.fields and node.name not in self.constants

    def value_for(self, item: Node, kind: str, other: Node) -> Node:
        """A list item or bare word compared with a field of type `kind`, checked against its values."""
        field_name = other.name if isinstance(other, Name) else None
        if kind.startswith("enum:"):
            spec = self.fields[kind[5:]]
            word = item.name if isinstance(item, Name) else item.value if isinstance(item, Lit) else None
            if not isinstance(word, str) or word not in spec.values:
                raise ConditionError(
                    f"{word!r} is not a value of {spec.name} (one of {'|'.join(spec.values)})",
                    field=spec.name, column=item.column,
                )
            return Lit(item.column, word)
        if kind == "id" and isinstance(item, Name) and self._is_value_word(item):
            return Lit(item.column, item.name)
        if isinstance(item, Name) and self._is_value_word(item):
            raise ConditionError(f"unknown field {item.name!r}{_suggest(item.name, self.fields)}",
                                 field=item.name, column=item.column)
        checked, item_kind = self.check(item)
        if not _compatible(kind, item_kind):
            raise ConditionError(f"cannot compare {field_name or 'a ' + kind} with {_show(checked)}",
                                 field=field_name, column=item.column)
        return checked

    def finish_compare(self, node: Compare, left: Node, lkind: str, right: Node, rkind: str) -> tuple[Node, str]:
        field_name = next((n.name for n in (left, right) if isinstance(n, Name)), None)
        for kind, other in ((lkind, right), (rkind, left)):
            if kind.startswith("enum:") and isinstance(other, Lit):
                self.value_for(other, kind, left if other is right else right)
        if not _compatible(lkind, rkind):
            raise ConditionError(f"cannot compare {_show(left)} ({lkind}) with {_show(right)} ({rkind})",
                                 field=field_name, column=node.column)
        if node.op in ("<", "<=", ">", ">=") and lkind != "number":
            raise ConditionError(f"{node.op!r} compares numbers; {_show(left)} is {lkind.split(':')[0]} (use == or in)",
                                 field=field_name, column=node.column)
        return Compare(node.column, node.op, left, right), "bool"

    def want_bool(self, node: Node, kind: str, where: str) -> None:
        if kind != "bool":
            name = node.name if isinstance(node, Name) else None
            raise ConditionError(f"{where} needs a true/false condition, but {_show(node)} is {kind.split(':')[0]}",
                                 field=name, column=node.column)

    def want_number(self, node: Node, kind: str, where: str) -> None:
        if kind != "number":
            name = node.name if isinstance(node, Name) else None
            raise ConditionError(f"{where} needs a number, but {_show(node)} is {kind.split(':')[0]}",
                                 field=name, column=node.column)


def _literal_type(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _compatible(a: str, b: str) -> bool:
    if a == b:
        return True
    textual = {"str", "id"}
    return (a in textual and b in textual) or (a.startswith("enum:") and b == "str") or (
        b.startswith("enum:") and a == "str"
    )


def _show(node: Node) -> str:
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Lit):
        return repr(node.value)
    return "the expression"


def _suggest(name: str, fields: Mapping[str, FieldSpec]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Condition:
    """A parsed, type-checked condition, ready to evaluate against facts."""

    source: str
    tree: Node
    fields: frozenset[str]

    def evaluate(self, facts: Mapping[str, Value]) -> bool | None:
        """True, False or None (unknown: some field it needed was missing)."""
        result = _eval(self.tree, facts)
        return result if result is None else bool(result)


def compile_condition(
    source: str, fields: Mapping[str, FieldSpec], constants: Mapping[str, bool | int | float | str]
) -> Condition:
    """Parse and type-check; ConditionError names the problem, the field and the column."""
    tree = parse(source)
    checker = _Checker(fields, constants)
    checked, kind = checker.check(tree)
    if kind != "bool":
        raise ConditionError(f"the condition must be true or false, but {_show(checked)} is {kind.split(':')[0]} "
                             "(compare it, e.g. `>= 9` or `== worse`)",
                             field=checked.name if isinstance(checked, Name) else None, column=1)
    return Condition(source, checked, frozenset(checker.used))


# ---------------------------------------------------------------------------------------------------- evaluation


def _eval(node: Node, facts: Mapping[str, Value]) -> Value:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Name):
        return facts.get(node.name)
    if isinstance(node, Not):
        value = _eval(node.operand, facts)
        return None if value is None else not value
    if isinstance(node, Neg):
        value = _eval(node.operand, facts)
        return None if value is None else -value  # type: ignore[operator]
    if isinstance(node, Logic):
        return _logic(node, facts)
    if isinstance(node, Arith):
        return _arith(node, facts)
    if isinstance(node, IsSet):
        present = _eval(node.operand, facts) is not None
        return not present if node.missing else present
    assert isinstance(node, Compare)
    return _compare(node, facts)


def _logic(node: Logic, facts: Mapping[str, Value]) -> Value:
    decisive = node.op == "or"  # the value that settles it: true for or, false for and
    unknown = False
    for operand in node.operands:
        value = _eval(operand, facts)
        if value is None:
            unknown = True
        elif bool(value) == decisive:
            return decisive
    return None if unknown else not decisive


def _arith(node: Arith, facts: Mapping[str, Value]) -> Value:
    left, right = _eval(node.left, facts), _eval(node.right, facts)
    if left is None or right is None:
        return None
    assert isinstance(left, int | float) and isinstance(right, int | float)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    return None if right == 0 else left / right


def _compare(node: Compare, facts: Mapping[str, Value]) -> Value:
    left = _eval(node.left, facts)
    if left is None:
        return None
    if node.op in ("in", "notin"):
        assert isinstance(node.right, ListLit)
        values = [_eval(item, facts) for item in node.right.items]
        found = left in values
        return found if node.op == "in" else not found
    right = _eval(node.right, facts)
    if right is None:
        return None
    if node.op == "==":
        return left == right
    if node.op == "!=":
        return left != right
    assert isinstance(left, int | float) and isinstance(right, int | float)
    if node.op == "<":
        return left < right
    if node.op == "<=":
        return left <= right
    if node.op == ">":
        return left > right
    return left >= right

