"""Label and field selectors with the grammar and matching rules of apimachinery.

Labels: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k>n``, ``k<n``, comma-separated (all must hold). ``!=`` and ``notin`` also match
objects without the key, as on a real server.

Fields: ``f=v``, ``f==v``, ``f!=v``, comma-separated, with ``\\,`` ``\\=`` ``\\\\``
escapes; each resource declares which fields it supports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vpcnet.errors import VpcnetError


class SelectorError(VpcnetError):
    """An unparsable selector or an unsupported field (400 BadRequest)."""


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    op: str  # exists, !exists, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if not has:
            return False
        try:
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_OP_RE = re.compile(r"^(?P<key>[^=!<>\s]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<val>\S*)$")
_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _check_key(key: str, text: str) -> None:
    if not _LABEL_KEY_RE.match(key) or len(key.split("/")[-1]) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {text!r}")


def parse_label_selector(text: str | None) -> tuple[LabelRequirement, ...]:
    if not text or not text.strip():
        return ()
    requirements = []
    for part in _split_top_level(text):
        if not part:
            raise SelectorError(f"found '', expected: identifier in label selector {text!r}")
        if m := _SET_RE.match(part):
            key = m["key"]
            _check_key(key, part)
            values = tuple(v.strip() for v in m["vals"].split(",") if v.strip())
            requirements.append(LabelRequirement(key, m["op"], values))
        elif m := _OP_RE.match(part):
            key, op, val = m["key"], m["op"], m["val"]
            _check_key(key, part)
            if op in (">", "<") and not val.lstrip("-").isdigit():
                raise SelectorError(f"unable to parse requirement: {part!r}: value must be an integer")
            mapped = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[op]
            requirements.append(LabelRequirement(key, mapped, (val,)))
        elif part.startswith("!"):
            _check_key(part[1:].strip(), part)
            requirements.append(LabelRequirement(part[1:].strip(), "!exists"))
        else:
            _check_key(part, part)
            requirements.append(LabelRequirement(part, "exists"))
    return tuple(requirements)


def labels_match(requirements: tuple[LabelRequirement, ...], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


FieldGetter = Callable[[dict[str, object]], str]


def _split_escaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None, supported: Mapping[str, FieldGetter]) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    requirements = []
    for part in _split_escaped(text, ","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            name, _, value = part.partition("!=")
            equal = False
        elif "==" in part:
            name, _, value = part.partition("==")
            equal = True
        elif len(pieces := _split_escaped(part, "=")) == 2:
            name, value = pieces
            equal = True
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        name = name.strip()
        if name not in supported:
            raise SelectorError(f'field label not supported: {name}')
        requirements.append(FieldRequirement(name, _unescape(value.strip()), equal))
    return tuple(requirements)


def fields_match(
    requirements: tuple[FieldRequirement, ...], obj: dict[str, object], supported: Mapping[str, FieldGetter]
) -> bool:
    return all((supported[r.field](obj) == r.value) == r.equal for r in requirements)
