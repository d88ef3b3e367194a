"""Compare the observed and desired documents by meaning, and say what to do."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Literal

from bucketwarden.policy._document import PolicyDocument

PlanAction = Literal["none", "put", "delete"]


@dataclass(frozen=True, slots=True)
class Plan:
    action: PlanAction
    desired: PolicyDocument | None
    observed: PolicyDocument | None = None

    @property
    def changes(self) -> bool:
        return self.action != "none"

    @property
    def diff(self) -> str:
        """The readable diff, computed only when someone shows it: the reconcile loop needs only the action."""
        return diff_policies(self.observed, self.desired) if self.changes else ""


def _lines(doc: PolicyDocument | None) -> list[str]:
    if doc is None:
        return []
    obj = doc.to_obj()
    # to_obj writes an absent Version as 2008-10-17 (the same meaning); show the document as it really is.
    if doc.version is None:
        del obj["Version"]
    return json.dumps(obj, indent=2, ensure_ascii=False).splitlines(keepends=True)


def diff_policies(observed: PolicyDocument | None, desired: PolicyDocument | None) -> str:
    return "".join(difflib.unified_diff(_lines(observed), _lines(desired), fromfile="current", tofile="desired"))


def plan_change(observed: PolicyDocument | None, desired: PolicyDocument | None) -> Plan:
    """No change when the documents mean the same; string differences alone never cause a write."""
    if desired is None:
        return Plan("none" if observed is None else "delete", None, observed)
    if observed is not None and observed.same_meaning(desired):
        return Plan("none", desired, observed)
    return Plan("put", desired, observed)
