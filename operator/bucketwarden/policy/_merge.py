"""Merge our statement into a policy by Sid, and take it out again. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bucketwarden.policy._document import PolicyDocument, Statement


def remove_statements(
    sids: Iterable[str], statements: Sequence[Statement]
) -> tuple[tuple[Statement, ...], tuple[Statement, ...]]:
    """Split statements into (remaining, found): found are ALL statements whose Sid is in ``sids``.

    Dropping every owned Sid first, duplicates included, is what keeps merge from ever producing a
    duplicate Sid (Cloud Custodian's set-statements did, cloud-custodian#6145).
    """
    owned = set(sids)
    remaining = tuple(s for s in statements if s.sid is None or s.sid not in owned)
    found = tuple(s for s in statements if s.sid is not None and s.sid in owned)
    return remaining, found


def merge_policy(existing: PolicyDocument | None, ours: Statement, owned_sids: Iterable[str]) -> PolicyDocument:
    """Every foreign statement kept as it was and in order, ours in place of the first owned one.

    Idempotent: merging the result again gives the same document.
    """
    owned = {*owned_sids, *([ours.sid] if ours.sid else [])}
    if existing is None:
        return PolicyDocument(statements=(ours,))
    position = next((i for i, s in enumerate(existing.statements) if s.sid in owned), None)
    remaining, _ = remove_statements(owned, existing.statements)
    if position is None:
        return existing.with_statements((*remaining, ours))
    before = sum(1 for s in existing.statements[:position] if s.sid not in owned)
    return existing.with_statements((*remaining[:before], ours, *remaining[before:]))


def remove_policy(existing: PolicyDocument | None, owned_sids: Iterable[str]) -> PolicyDocument | None:
    """The document without our statements, or None when nothing would remain (delete the policy)."""
    if existing is None:
        return None
    remaining, _ = remove_statements(owned_sids, existing.statements)
    if not remaining:
        return None
    return existing.with_statements(remaining)
