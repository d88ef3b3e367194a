"""Read ProtectedBucket manifests from YAML files or folders (multi-document), with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bucketwarden.errors import InvalidSpecError
from bucketwarden.spec import API_VERSION, KIND, ProtectedBucket


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


def load_manifests(path: str | Path) -> list[Manifest]:
    """Every ProtectedBucket in a file or folder; other kinds in the same files are skipped."""
    out: list[Manifest] = []
    for file in _files(Path(path)):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise InvalidSpecError(f"{file}: not valid YAML: {exc}") from None
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            source = f"{file}#{i}" if len(docs) > 1 else str(file)
            if isinstance(doc, dict) and doc.get("kind") not in (None, KIND):
                continue
            out.append(Manifest(source, parse_manifest(doc, source)))
    if not out:
        raise InvalidSpecError(f"{path}: no ProtectedBucket manifests found")
    return out
