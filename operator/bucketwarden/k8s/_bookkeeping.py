"""Where kopf keeps its bookkeeping of our resources: in status (``status.kopf``), which only the operator writes.

kopf records the spec it last handled (its diff base) and, while a handler retries, the handler's progress.
Earlier versions kept both in annotations under ``bucketwarden.io/``. That cost an object PATCH after every
handled change, beside the status patch, and one more watch event for kopf to read back: 2 object PATCHes and 4
watch events per new ProtectedBucket instead of 1 and 3 (docs/benchmarks.md, B9). And annotations are the
tenant's to write: a forged diff base or progress record made kopf skip a handler (k8s/_warmup.py had to catch
that). Status is the operator's alone (the chart's aggregated roles leave status out), and kopf's record now rides
in the same status patch as ours.

An object last handled by an earlier version has its diff base in the annotation only. It is read from there
while our status says that very generation was reconciled, which a tenant cannot forge: an upgrade reconciles
nothing that did not change, and the next handled change writes the record to status. Any other annotation of
kopf's that an object carries is ignored (kopf no longer reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from bucketwarden.crd import KOPF_STATUS
from bucketwarden.spec import GROUP

DIFFBASE_FIELD = f"status.{KOPF_STATUS}.lastHandledConfiguration"
PROGRESS_FIELD = f"status.{KOPF_STATUS}.progress"
TOUCH_FIELD = f"status.{KOPF_STATUS}.dummy"  # each declared in every CRD's status schema (crd.KOPF_STATUS_SCHEMA)
LEGACY_PREFIX = GROUP  # where earlier versions kept it: bucketwarden.io/last-handled-configuration
LEGACY_DIFFBASE_KEY = "last-handled-configuration"
LEGACY_DIFFBASE = f"{LEGACY_PREFIX}/{LEGACY_DIFFBASE_KEY}"


def reconciled_this_generation(body: Mapping[str, Any]) -> bool:
    """Our status says the object's current generation was reconciled (status: the operator's alone to write)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    generation = meta.get("generation")
    return generation is not None and status.get("observedGeneration") == generation


class StatusDiffBase(kopf.StatusDiffBaseStorage):
    """kopf's diff base in status; an earlier version's annotation only for a generation our status says it handled."""

    def __init__(self) -> None:
        super().__init__(field=DIFFBASE_FIELD)
        self._legacy = kopf.AnnotationsDiffBaseStorage(prefix=LEGACY_PREFIX, key=LEGACY_DIFFBASE_KEY)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        essence = super().fetch(body=body)
        if essence is None and reconciled_this_generation(body):
            essence = self._legacy.fetch(body=body)
        return essence


def storages() -> tuple[kopf.ProgressStorage, kopf.DiffBaseStorage]:
    """kopf's progress and diff-base storages for ``settings.persistence``."""
    return kopf.StatusProgressStorage(field=PROGRESS_FIELD, touch_field=TOUCH_FIELD), StatusDiffBase()


def _resolve(body: Mapping[str, Any], field: str) -> Any:
    value: Any = body
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def handled_before(body: Mapping[str, Any]) -> bool:
    """kopf has a diff base for the object (it will run no create handler for it)."""
    if _resolve(body, DIFFBASE_FIELD) is not None:
        return True
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return LEGACY_DIFFBASE in annotations and reconciled_this_generation(body)


def retrying(body: Mapping[str, Any]) -> bool:
    """kopf has a handler's progress recorded for the object (a retry pending across a restart)."""
    return bool(_resolve(body, PROGRESS_FIELD))
