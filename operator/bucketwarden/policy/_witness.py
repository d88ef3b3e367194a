"""Glob intersection with a witness: is there a string that two Resource-style globs both match, and which?

IAM's ``*`` matches any run of characters and ``?`` exactly one. The product of the two patterns' automata is
searched breadth first, so the witness is a shortest common string, built from the patterns' own literals and
``x`` where both sides are wildcards. Exact: None means no string matches both.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

FILL = "x"


def _closure(a: str, b: str, i: int, j: int) -> list[tuple[int, int]]:
    """(i, j) and every state reached by letting a ``*`` match nothing."""
    out: list[tuple[int, int]] = []
    todo, seen = [(i, j)], {(i, j)}
    while todo:
        si, sj = todo.pop()
        out.append((si, sj))
        following = []
        if si < len(a) and a[si] == "*":
            following.append((si + 1, sj))
        if sj < len(b) and b[sj] == "*":
            following.append((si, sj + 1))
        for state in following:
            if state not in seen:
                seen.add(state)
                todo.append(state)
    return out


def _step(pattern: str, pos: int, ch: str) -> int | None:
    if pos >= len(pattern):
        return None
    p = pattern[pos]
    if p == "*":
        return pos
    if p == "?" or p == ch:
        return pos + 1
    return None


@lru_cache(maxsize=4096)
def glob_intersection(a: str, b: str) -> str | None:
    """A shortest string matched by both globs, or None when their languages are disjoint."""
    start = (0, 0)
    parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue: deque[tuple[int, int]] = deque([start])
    while queue:
        node = queue.popleft()
        for i, j in _closure(a, b, *node):
            if i == len(a) and j == len(b):
                out: list[str] = []
                cur: tuple[int, int] | None = node
                while cur is not None and parents[cur] is not None:
                    parent = parents[cur]
                    assert parent is not None
                    out.append(parent[1])
                    cur = parent[0]
                return "".join(reversed(out))
            chars = [c for c in (a[i] if i < len(a) else "", b[j] if j < len(b) else "") if c and c not in "*?"]
            for ch in (*chars, FILL):
                ni, nj = _step(a, i, ch), _step(b, j, ch)
                if ni is None or nj is None:
                    continue
                nxt = (ni, nj)
                if nxt not in parents:
                    parents[nxt] = (node, ch)
                    queue.append(nxt)
    return None
