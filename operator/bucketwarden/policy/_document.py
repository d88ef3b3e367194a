"""Bucket policy documents: parse any valid policy, serialise it stably, and compare documents by meaning."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from bucketwarden.errors import PolicyParseError

POLICY_VERSION = "2012-10-17"
# IAM's default when Version is absent: ${...} is literal text, not a policy variable.
LEGACY_POLICY_VERSION = "2008-10-17"
MAX_POLICY_BYTES = 20 * 1024

_PRINCIPAL_TYPES = {"AWS", "Service", "Federated", "CanonicalUser"}
_DOCUMENT_KEYS = {"Version", "Id", "Statement"}
# Every key a statement may have; our own statement is written in this order, foreign ones keep theirs.
STATEMENT_KEY_ORDER: tuple[str, ...] = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_STATEMENT_KEYS = frozenset(STATEMENT_KEY_ORDER)

ConditionBlock = Mapping[str, Mapping[str, tuple[str, ...]]]


def _scalar_text(value: Any, where: str) -> str:
    """Condition values may be JSON strings, numbers or booleans; IAM compares their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    raise PolicyParseError(f"{where}: expected a string, number or boolean, got {type(value).__name__}")


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    """Fields that take "x" or ["x", ...]."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyParseError(f"{where}: expected a string or a non-empty list of strings")


@dataclass(frozen=True, slots=True)
class Principal:
    """A Principal or NotPrincipal value: ``"*"`` or a mapping of principal type to identifiers."""

    wildcard: bool
    entries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, where: str) -> Principal:
        if value == "*":
            return cls(wildcard=True)
        if not isinstance(value, dict) or not value:
            raise PolicyParseError(f'{where}: expected "*" or an object such as {{"AWS": ...}}')
        entries: dict[str, tuple[str, ...]] = {}
        for kind, ids in value.items():
            if kind not in _PRINCIPAL_TYPES:
                raise PolicyParseError(f"{where}: unknown principal type {kind!r}")
            entries[kind] = _string_list(ids, f"{where}.{kind}")
        return cls(wildcard=False, entries=entries)

    def canonical(self) -> Any:
        if self.wildcard:
            return "*"
        return sorted((kind, sorted(set(ids))) for kind, ids in self.entries.items())


class _ComparedByMeaning:
    """Equal, and hashed, by what it means rather than how its JSON was written: ``_meaning()`` is a canonical text
    of it (value order, duplicates, "x" vs ["x"] and condition key case do not matter)."""

    __slots__ = ()

    def _meaning(self) -> str:
        raise NotImplementedError

    def same_meaning(self, other: Self) -> bool:
        return self._meaning() == other._meaning()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.same_meaning(other)

    def __hash__(self) -> int:
        return hash(self._meaning())


@dataclass(frozen=True, slots=True, eq=False)
class Statement(_ComparedByMeaning):
    """One policy statement. ``raw`` is kept as parsed, so a foreign statement is written back unchanged."""

    raw: Mapping[str, Any]
    sid: str | None
    effect: str
    principal: Principal | None
    not_principal: Principal | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: ConditionBlock
    _memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, obj: Any, where: str = "Statement") -> Statement:
        if not isinstance(obj, dict):
            raise PolicyParseError(f"{where}: a statement must be a JSON object")
        unknown = set(obj) - _STATEMENT_KEYS
        if unknown:
            raise PolicyParseError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        sid = obj.get("Sid")
        if sid is not None and not isinstance(sid, str):
            raise PolicyParseError(f"{where}.Sid: must be a string")
        effect = obj.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyParseError(f'{where}.Effect: must be "Allow" or "Deny", got {effect!r}')
        label = f"{where}({sid})" if sid else where
        principal, not_principal = cls._pair(obj, "Principal", label, Principal.parse)
        actions, not_actions = cls._pair(obj, "Action", label, _string_list)
        resources, not_resources = cls._pair(obj, "Resource", label, _string_list)
        if principal is None and not_principal is None:
            raise PolicyParseError(f"{label}: a bucket policy statement needs Principal or NotPrincipal")
        return cls(
            raw=obj,
            sid=sid,
            effect=effect,
            principal=principal,
            not_principal=not_principal,
            actions=actions,
            not_actions=not_actions,
            resources=resources,
            not_resources=not_resources,
            conditions=cls._parse_conditions(obj.get("Condition"), f"{label}.Condition"),
        )

    @staticmethod
    def _pair(obj: Mapping[str, Any], name: str, where: str, parse: Any) -> tuple[Any, Any]:
        has, has_not = name in obj, f"Not{name}" in obj
        if has and has_not:
            raise PolicyParseError(f"{where}: {name} and Not{name} are mutually exclusive")
        if not has and not has_not and name != "Principal":
            raise PolicyParseError(f"{where}: needs {name} or Not{name}")
        if has:
            return parse(obj[name], f"{where}.{name}"), None
        if has_not:
            return None, parse(obj[f"Not{name}"], f"{where}.Not{name}")
        return None, None

    @staticmethod
    def _parse_conditions(value: Any, where: str) -> ConditionBlock:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise PolicyParseError(f"{where}: must be an object of operators")
        block: dict[str, dict[str, tuple[str, ...]]] = {}
        for operator, keys in value.items():
            if not isinstance(keys, dict) or not keys:
                raise PolicyParseError(f"{where}.{operator}: must be a non-empty object of condition keys")
            entry: dict[str, tuple[str, ...]] = {}
            for key, values in keys.items():
                at = f"{where}.{operator}.{key}"
                items = values if isinstance(values, list) else [values]
                if not items:
                    raise PolicyParseError(f"{at}: empty list of values")
                # Condition key names are case-insensitive in IAM; values are not.
                entry[key.lower()] = entry.get(key.lower(), ()) + tuple(_scalar_text(v, at) for v in items)
            block[operator] = entry
        return block

    @classmethod
    def build(
        cls,
        *,
        sid: str | None,
        effect: str,
        principal: Any,
        action: str | list[str],
        resource: str | list[str],
        condition: Mapping[str, Mapping[str, str | list[str]]] | None = None,
    ) -> Statement:
        """Make a statement of ours from its fields, in our key order."""
        obj: dict[str, Any] = {}
        if sid is not None:
            obj["Sid"] = sid
        obj["Effect"] = effect
        obj["Principal"] = principal
        obj["Action"] = action
        obj["Resource"] = resource
        if condition:
            obj["Condition"] = {op: dict(keys) for op, keys in condition.items()}
        return cls.parse(obj, f"Statement({sid})" if sid else "Statement")

    def to_json(self) -> dict[str, Any]:
        """The statement as written: foreign statements byte-for-byte in meaning, ours in our key order."""
        return json.loads(json.dumps(self.raw))  # type: ignore[no-any-return]

    def canonical(self) -> Any:
        """A normal form: value order, duplicates, "x" vs ["x"] and condition key case don't matter."""

        def values(v: tuple[str, ...] | None, *, fold: bool = False) -> Any:
            if v is None:
                return None
            return sorted({x.lower() if fold else x for x in v})

        return [
            self.sid or "",
            self.effect,
            None if self.principal is None else self.principal.canonical(),
            None if self.not_principal is None else self.not_principal.canonical(),
            values(self.actions, fold=True),  # action names are case-insensitive
            values(self.not_actions, fold=True),
            values(self.resources),
            values(self.not_resources),
            sorted(
                (op, sorted((key, sorted(set(vals))) for key, vals in keys.items()))
                for op, keys in self.conditions.items()
            ),
        ]

    def canonical_key(self) -> str:
        key = self._memo.get("canonical")
        if key is None:
            key = self._memo["canonical"] = json.dumps(self.canonical(), separators=(",", ":"))
        return key

    def _meaning(self) -> str:
        return self.canonical_key()


@dataclass(frozen=True, slots=True, eq=False)
class PolicyDocument(_ComparedByMeaning):
    """A whole bucket policy: new ones are ``"Version": "2012-10-17"``; an existing 2008-10-17 one stays so."""

    statements: tuple[Statement, ...]
    version: str | None = POLICY_VERSION
    id: str | None = None
    _memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str | bytes) -> PolicyDocument:
        """Parse a policy as S3 returns it. Raises PolicyParseError with a clear message, never guesses."""
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PolicyParseError(f"the bucket policy is not valid JSON: {exc}") from None
        return cls.from_obj(obj)

    @classmethod
    def from_obj(cls, obj: Any) -> PolicyDocument:
        if not isinstance(obj, dict):
            raise PolicyParseError("the bucket policy must be a JSON object")
        unknown = set(obj) - _DOCUMENT_KEYS
        if unknown:
            raise PolicyParseError(f"the bucket policy has unknown top-level field(s) {', '.join(sorted(unknown))}")
        version = obj.get("Version")
        if version is not None and version not in ("2012-10-17", "2008-10-17"):
            raise PolicyParseError(f'Version must be "2012-10-17" or "2008-10-17", got {version!r}')
        doc_id = obj.get("Id")
        if doc_id is not None and not isinstance(doc_id, str):
            raise PolicyParseError("Id must be a string")
        raw_statements = obj.get("Statement")
        if isinstance(raw_statements, dict):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list) or not raw_statements:
            raise PolicyParseError("the bucket policy needs a non-empty Statement list")
        statements = tuple(Statement.parse(s, f"Statement[{i}]") for i, s in enumerate(raw_statements))
        return cls(statements=statements, version=version, id=doc_id)

    def with_statements(self, statements: Sequence[Statement]) -> PolicyDocument:
        """A copy with other statements, in the same Version.

        A 2008-10-17 document (or one without a Version, which means the same) is never upgraded: under
        2012-10-17 a literal ``${aws:username}`` in a foreign statement would become a policy variable and change
        what the statement grants or denies. Our own statement needs no policy variables, so it means the same
        under either Version.
        """
        return PolicyDocument(statements=tuple(statements), version=self.version or LEGACY_POLICY_VERSION, id=self.id)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"Version": self.version or LEGACY_POLICY_VERSION}
        if self.id is not None:
            obj["Id"] = self.id
        obj["Statement"] = [s.to_json() for s in self.statements]
        return obj

    def to_json(self, *, pretty: bool = False) -> str:
        """Stable serialisation: compact for the PUT, indented for people. Computed once per document."""
        key = "pretty" if pretty else "compact"
        text = self._memo.get(key)
        if text is None:
            if pretty:
                text = json.dumps(self.to_obj(), indent=2, ensure_ascii=False)
            else:
                text = json.dumps(self.to_obj(), separators=(",", ":"), ensure_ascii=False)
            self._memo[key] = text
        return text

    @property
    def size_bytes(self) -> int:
        """Size of the compact form we PUT, against S3's 20 KB limit."""
        return len(self.to_json().encode("utf-8"))

    def canonical(self) -> Any:
        return {
            "Version": self.version or LEGACY_POLICY_VERSION,  # IAM's default when Version is absent
            "Id": self.id,
            "Statement": sorted(s.canonical_key() for s in self.statements),
        }

    def canonical_json(self) -> str:
        text = self._memo.get("canonical")
        if text is None:
            text = self._memo["canonical"] = json.dumps(self.canonical(), separators=(",", ":"), sort_keys=True)
        return text

    @property
    def policy_hash(self) -> str:
        """A short hash of the document's meaning, shown on the status."""
        return "sha256:" + hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def _meaning(self) -> str:
        return self.canonical_json()

    @property
    def sids(self) -> list[str]:
        return [s.sid for s in self.statements if s.sid is not None]

    def duplicate_sids(self) -> list[str]:
        return sorted(sid for sid, n in Counter(self.sids).items() if n > 1)

    def find(self, sid: str) -> list[Statement]:
        return [s for s in self.statements if s.sid == sid]
