"""Who may claim what: a ProtectedBucket is acted on only when a cluster admin's TenantPolicy grants it. Pure.

bucketwarden is a privileged deputy: its AWS role may write every bucket policy in the account. So every field
of a ProtectedBucket that decides what it touches (the bucket, the role it assumes, the SourceAllowLists it
pulls in) is hostile input until one TenantPolicy grants all of them to the resource's namespace. Without a
grant the resource is NotAuthorized, makes no AWS call, and never counts as a claim on its bucket.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bucketwarden.principals import RoleAssumption, tenant_session_name
from bucketwarden.spec import ProtectedBucketSpec, TenantPolicySpec

NOT_AUTHORIZED = "NotAuthorized"


def _matches(value: str, globs: Iterable[str]) -> bool:
    # fnmatchcase: no case folding, so "Team-A" never matches a grant for "team-a".
    return any(fnmatch.fnmatchcase(value, glob) for glob in globs)


@dataclass(frozen=True, slots=True)
class Request:
    """What one ProtectedBucket asks to touch: the fields a grant must cover."""

    namespace: str
    name: str
    bucket: str
    assume_role_arn: str | None = None
    allow_lists: tuple[str, ...] = ()

    @classmethod
    def of(cls, namespace: str, name: str, spec: ProtectedBucketSpec) -> Request:
        lists = tuple(r.name for r in spec.allowed_sources_from)
        return cls(namespace, name, spec.bucket_name, spec.assume_role_arn, lists)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on a Request: the granting TenantPolicy, or what is missing and the command that grants it."""

    allowed: bool
    policy: str | None = None
    assume_role: RoleAssumption | None = None
    message: str = ""


def grant_command(request: Request, *, role: bool = False, lists: Sequence[str] = ()) -> str:
    """The command a cluster admin runs to grant ``request`` (prints a TenantPolicy for kubectl apply)."""
    words = ["bucketwarden", "grant", "--namespace", request.namespace, "--bucket", request.bucket]
    if role and request.assume_role_arn:
        words += ["--assume-role-arn", request.assume_role_arn]
    for name in lists:
        words += ["--source-allow-list", name]
    return " ".join(shlex.quote(w) for w in words) + " | kubectl apply -f -"


@dataclass(frozen=True, slots=True)
class Tenancy:
    """Every valid TenantPolicy by name, and the labels of every namespace (for namespaceSelector)."""

    policies: Mapping[str, TenantPolicySpec] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def policies_for(self, namespace: str) -> list[tuple[str, TenantPolicySpec]]:
        """The TenantPolicies that match ``namespace``, by name (the first one that grants everything wins)."""
        labels = dict(self.namespace_labels.get(namespace, {}))
        out = []
        for name in sorted(self.policies):
            policy = self.policies[name]
            by_name = _matches(namespace, policy.namespaces)
            by_label = policy.namespace_selector is not None and policy.namespace_selector.matches(labels)
            if by_name or by_label:
                out.append((name, policy))
        return out

    def grants_all_namespaces(self) -> list[str]:
        return sorted(name for name, p in self.policies.items() if p.grants_all_namespaces)

    def authorize(self, request: Request) -> Decision:
        """Whether one TenantPolicy grants the namespace the bucket, the role and every SourceAllowList."""
        matching = self.policies_for(request.namespace)
        for_bucket = [(n, p) for n, p in matching if _matches(request.bucket, p.buckets)]
        who = f"namespace {request.namespace}"
        if not for_bucket:
            why = f"no TenantPolicy grants {who} the bucket {request.bucket}"
            if not matching:
                why = f"no TenantPolicy grants {who} anything, so it may claim no bucket ({request.bucket} asked)"
            return self._refuse(why, grant_command(request))
        candidates = for_bucket
        if request.assume_role_arn is not None:
            arn = request.assume_role_arn
            candidates = [(n, p) for n, p in candidates if _matches(arn, p.assume_role_arns)]
            if not candidates:
                why = (
                    f"no TenantPolicy grants {who} the role {arn} (assumeRoleArn) together with bucket {request.bucket}"
                )
                return self._refuse(why, grant_command(request, role=True))
        missing: list[str] = []
        if request.allow_lists:
            with_lists = [
                (n, p) for n, p in candidates if all(_matches(lst, p.source_allow_lists) for lst in request.allow_lists)
            ]
            if not with_lists:
                granted = candidates[0][1].source_allow_lists
                missing = [lst for lst in request.allow_lists if not _matches(lst, granted)]
                why = (
                    f"no TenantPolicy grants {who} the SourceAllowList(s) {', '.join(missing)} together with bucket "
                    f"{request.bucket}"
                )
                return self._refuse(why, grant_command(request, role=True, lists=request.allow_lists))
            candidates = with_lists
        name, policy = candidates[0]
        return Decision(True, policy=name, assume_role=self._assumption(request, policy))

    @staticmethod
    def _assumption(request: Request, policy: TenantPolicySpec) -> RoleAssumption | None:
        arn = request.assume_role_arn
        if arn is None:
            return None
        external_id = next((g.external_id for g in policy.external_ids if fnmatch.fnmatchcase(arn, g.role_arn)), None)
        return RoleAssumption(arn, external_id, tenant_session_name(request.namespace, request.name))

    @staticmethod
    def _refuse(why: str, command: str) -> Decision:
        return Decision(
            False,
            message=f"{why}; bucketwarden made no AWS call. A cluster admin grants it with: {command}",
        )


def render_grant(
    name: str,
    namespaces: Sequence[str],
    buckets: Sequence[str],
    *,
    assume_role_arns: Sequence[str] = (),
    external_id: str | None = None,
    source_allow_lists: Sequence[str] = (),
) -> dict[str, object]:
    """A TenantPolicy manifest (what ``bucketwarden grant`` prints); validated by the model before it is returned."""
    spec: dict[str, object] = {"namespaces": list(namespaces), "buckets": list(buckets)}
    if assume_role_arns:
        spec["assumeRoleArns"] = list(assume_role_arns)
        if external_id is not None:
            spec["externalIds"] = [{"roleArn": arn, "externalId": external_id} for arn in assume_role_arns]
    if source_allow_lists:
        spec["sourceAllowLists"] = list(source_allow_lists)
    TenantPolicySpec.model_validate(spec)
    return {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "TenantPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
