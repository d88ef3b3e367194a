"""Read ProtectedBucket manifests from YAML files, folders or standard input (multi-document, ``kind: List``),
with errors that name the file (and the line, for syntax errors)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from bucketwarden.errors import InvalidSpecError
from bucketwarden.sources import resolve_sources
from bucketwarden.spec import ALLOW_LIST_KIND, API_VERSION, KIND, ProtectedBucket, SourceAllowListSpec

STDIN = "-"
STDIN_NAME = "<stdin>"
# What kubectl accepts at the top of an object; anything else is a typo (e.g. "sepc") and an error.
TOP_LEVEL_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
LIST_KIND = "List"


@dataclass(frozen=True, slots=True)
class Manifest:
    source: str  # "path[#index]"
    resource: ProtectedBucket


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, pointing at the camelCase field path users wrote."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def parse_manifest(obj: Any, source: str) -> ProtectedBucket:
    if not isinstance(obj, dict):
        raise InvalidSpecError(f"{source}: expected a YAML mapping, got {type(obj).__name__}")
    if obj.get("apiVersion") != API_VERSION or obj.get("kind") != KIND:
        raise InvalidSpecError(
            f"{source}: expected apiVersion {API_VERSION} and kind {KIND}, "
            f"got {obj.get('apiVersion')!r} / {obj.get('kind')!r}"
        )
    unknown = sorted(str(k) for k in obj if k not in TOP_LEVEL_KEYS)
    if unknown:
        allowed = ", ".join(sorted(TOP_LEVEL_KEYS))
        raise InvalidSpecError(f"{source}: unknown top-level key(s) {', '.join(unknown)} (allowed: {allowed})")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise InvalidSpecError(f"{source}: metadata.name is required (a ProtectedBucket without metadata has no name)")
    try:
        return ProtectedBucket.model_validate(obj)
    except ValidationError as exc:
        raise InvalidSpecError(f"{source}: {format_validation_error(exc)}") from None


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not path.exists():
        raise InvalidSpecError(f"{path}: no such file or directory")
    return [path]


def yaml_error_message(name: str, exc: yaml.YAMLError) -> str:
    """``file:line:column: not valid YAML: problem``, with the 1-based line and column of the problem."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    detail = f"{problem} ({context})" if problem and context else problem or str(exc)
    return f"{where}: not valid YAML: {detail}"


def _documents(name: str, text: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InvalidSpecError(yaml_error_message(name, exc)) from None


def _expand_lists(docs: list[Any], name: str) -> Iterator[tuple[str, Any]]:
    """Each document with its source label; the items of a ``kind: List`` (kubectl's) count as documents."""
    for i, doc in enumerate(docs):
        source = f"{name}#{i}" if len(docs) > 1 else name
        if isinstance(doc, dict) and doc.get("kind") == LIST_KIND and doc.get("apiVersion") == "v1":
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise InvalidSpecError(f"{source}: a List's items must be a list, got {type(items).__name__}")
            yield from ((f"{source}.items[{j}]", item) for j, item in enumerate(items))
        else:
            yield source, doc


def _manifests_in(name: str, text: str) -> list[Manifest]:
    out = []
    for source, doc in _expand_lists(_documents(name, text), name):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") not in (None, KIND):
            continue
        out.append(Manifest(source, parse_manifest(doc, source)))
    return out


def _allow_lists_in(texts: list[tuple[str, str]]) -> dict[str, SourceAllowListSpec]:
    """The SourceAllowLists among the documents, by name; an invalid one is an error naming its source."""
    out: dict[str, SourceAllowListSpec] = {}
    for name, text in texts:
        for source, doc in _expand_lists(_documents(name, text), name):
            if not isinstance(doc, dict) or doc.get("kind") != ALLOW_LIST_KIND or doc.get("apiVersion") != API_VERSION:
                continue
            try:
                out[str((doc.get("metadata") or {}).get("name", ""))] = SourceAllowListSpec.model_validate(
                    doc.get("spec") or {}
                )
            except ValidationError as exc:
                raise InvalidSpecError(f"{source}: {format_validation_error(exc)}") from None
    return out


def _resolve_sources(manifests: list[Manifest], texts: list[tuple[str, str]]) -> list[Manifest]:
    """allowedSourcesFrom, offline: the SourceAllowLists must be among the same files (or on stdin)."""
    if not any(m.resource.spec.allowed_sources_from for m in manifests):
        return manifests
    lists = _allow_lists_in(texts)
    out = []
    for m in manifests:
        resolved = resolve_sources(m.resource.spec, lists)
        if resolved.missing:
            raise InvalidSpecError(
                f"{m.source}: SourceAllowList {', '.join(resolved.missing)} not found: put it (kind: "
                f"{ALLOW_LIST_KIND}) in the files given with -f"
            )
        out.append(Manifest(m.source, m.resource.model_copy(update={"spec": resolved.spec})))
    return out


def load_manifests(path: str | Path, *, stdin: TextIO | None = None) -> list[Manifest]:
    """Every ProtectedBucket in a file, a folder or, for ``-``, standard input; other kinds are skipped.

    A ProtectedBucket's allowedSourcesFrom is resolved from the SourceAllowLists among the same documents.
    """
    if str(path) == STDIN:
        texts = [(STDIN_NAME, (stdin or sys.stdin).read())]
    else:
        texts = [(str(file), file.read_text(encoding="utf-8")) for file in _files(Path(path))]
    out = [m for name, text in texts for m in _manifests_in(name, text)]
    if not out:
        raise InvalidSpecError(f"{STDIN_NAME if str(path) == STDIN else path}: no ProtectedBucket manifests found")
    return _resolve_sources(out, texts)
