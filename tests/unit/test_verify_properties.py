"""The whole-bucket verifier against the evaluator, for generated foreign Deny statements (issue #10).

Whenever verify says Pass, no request of a large generated set of AWS Backup (and operator) requests is denied by
``evaluate``; whenever it says Fail, each counterexample it gives IS denied by ``evaluate``.
100 examples keep the unit suite fast; BUCKETWARDEN_HYPOTHESIS_EXAMPLES=2000 searches harder.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bucketwarden.policy import (
    Caller,
    PolicyDocument,
    Request,
    evaluate,
    merge_policy,
    model_world,
    render_statement,
    verify_policy,
)
from bucketwarden.spec import ProtectedBucketSpec
from tests.seed import ROLE_NAME, backup_role, operator_identity
from tests.strategies import (
    ACCOUNT,
    BACKUP_KEYS,
    BACKUP_ROLE_ID,
    BUCKET,
    BUCKET_ARN,
    PROPERTY_SETTINGS,
    backup_deny_statements,
)

NOW = 1_795_000_000.0  # 2026-11-18: a fixed clock, so aws:CurrentTime conditions are reproducible
ROLE = backup_role(ACCOUNT, BACKUP_ROLE_ID)
OPERATOR = operator_identity(ACCOUNT)
SPEC = ProtectedBucketSpec.model_validate(
    {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE_NAME}]}
)
# Values a real request may carry for keys the model calls unknown: a Pass must hold whatever they are.
UNKNOWN_VALUES: tuple[dict[str, str], ...] = (
    {},
    {"aws:PrincipalOrgID": "o-abcdefghij"},
    {"aws:PrincipalOrgID": "o-zzzzzzzzzz", "s3:ExistingObjectTag/class": "public"},
)


def requests_of(caller: Caller) -> list[Request]:
    """Every modelled action on the bucket or on each key, under every possible value of the varying keys."""
    base = caller.context.base()
    varying = [[(key, v) for v in options] for key, options in caller.context.alternatives.items()]
    contexts = []
    for combo in itertools.product(*varying):
        ctx: dict[str, Any] = dict(base)
        for key, value in combo:
            if value is None:
                ctx.pop(key, None)
            else:
                ctx[key] = value
        contexts.append(ctx)
    out = []
    for modelled in caller.actions:
        resources = [BUCKET_ARN] if modelled.resource == "bucket" else [f"{BUCKET_ARN}/{k}" for k in BACKUP_KEYS]
        for resource, ctx, extra in itertools.product(resources, contexts, UNKNOWN_VALUES):
            out.append(Request.of(modelled.action, resource, {**ctx, **extra}))
    return out


def policy_with(foreign: list[dict[str, Any]]) -> PolicyDocument:
    existing = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": foreign})
    return merge_policy(existing, render_statement(SPEC, [ROLE], OPERATOR), SPEC.owned_sids)


@PROPERTY_SETTINGS
@given(
    foreign=st.lists(backup_deny_statements(), min_size=1, max_size=2).map(
        lambda stmts: [{**s, "Sid": f"Foreign{i}"} for i, s in enumerate(stmts)]
    )
)
def test_verify_policy_pass_means_no_modelled_request_is_denied_and_fail_gives_a_real_counterexample(
    foreign: list[dict[str, Any]],
) -> None:
    policy = policy_with(foreign)
    verification = verify_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW)
    if verification.verdict == "Pass":
        for caller in model_world(SPEC, [ROLE], OPERATOR, now=NOW).callers:
            for request in requests_of(caller):
                decision = evaluate(policy, request)
                assert not decision.denied, (caller.who, request.action, request.resource, decision.label)
    elif verification.verdict == "Fail":
        assert verification.counterexamples or verification.failures
        for example in verification.counterexamples:
            assert evaluate(policy, example.request).denied, example.describe()
