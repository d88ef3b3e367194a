"""The pure policy core: document model, render, merge, plan, evaluate, verify and lint. No I/O."""

from bucketwarden.policy._adopt import (
    ADOPTION_REFUSED,
    STATEMENT_ADOPTED,
    AdoptionCheck,
    check_adoption,
    statement_hash,
    supersede_problems,
)
from bucketwarden.policy._cidr import CidrReport, analyse_cidrs
from bucketwarden.policy._conditions import CONDITION_OPERATORS
from bucketwarden.policy._document import (
    MAX_POLICY_BYTES,
    POLICY_VERSION,
    PolicyDocument,
    Principal,
    Statement,
)
from bucketwarden.policy._evaluate import Decision, Evaluation, Request, evaluate, statement_applies
from bucketwarden.policy._lint import (
    ALLOWS_ALL_ADDRESSES,
    DUPLICATE_SIDS,
    HOST_BITS_NORMALISED,
    IPV4_ONLY,
    OPERATOR_NOT_EXEMPT,
    OWNED_SID_FOREIGN_CONTENT,
    POLICY_TOO_LARGE,
    PRIVATE_SOURCE_IP,
    RANGES_COLLAPSED,
    VERSION_UPGRADED,
    has_errors,
    lint_policy,
    lint_spec,
)
from bucketwarden.policy._merge import merge_policy, remove_policy, remove_statements
from bucketwarden.policy._plan import Plan, diff_policies, plan_change
from bucketwarden.policy._render import (
    bucket_arns,
    describe_exemptions,
    partition_for_region,
    render_statement,
    user_id_patterns,
)
from bucketwarden.policy._verify import (
    FOREIGN_DENY_BLOCKS_EXEMPT_ROLE,
    Scenario,
    ScenarioResult,
    Verification,
    build_scenarios,
    verify_policy,
)

__all__ = [
    "ADOPTION_REFUSED",
    "ALLOWS_ALL_ADDRESSES",
    "CONDITION_OPERATORS",
    "DUPLICATE_SIDS",
    "FOREIGN_DENY_BLOCKS_EXEMPT_ROLE",
    "HOST_BITS_NORMALISED",
    "IPV4_ONLY",
    "MAX_POLICY_BYTES",
    "OPERATOR_NOT_EXEMPT",
    "OWNED_SID_FOREIGN_CONTENT",
    "POLICY_TOO_LARGE",
    "POLICY_VERSION",
    "PRIVATE_SOURCE_IP",
    "RANGES_COLLAPSED",
    "STATEMENT_ADOPTED",
    "VERSION_UPGRADED",
    "AdoptionCheck",
    "CidrReport",
    "Decision",
    "Evaluation",
    "Plan",
    "PolicyDocument",
    "Principal",
    "Request",
    "Scenario",
    "ScenarioResult",
    "Statement",
    "Verification",
    "analyse_cidrs",
    "bucket_arns",
    "build_scenarios",
    "check_adoption",
    "describe_exemptions",
    "diff_policies",
    "evaluate",
    "has_errors",
    "lint_policy",
    "lint_spec",
    "merge_policy",
    "partition_for_region",
    "plan_change",
    "remove_policy",
    "remove_statements",
    "render_statement",
    "statement_applies",
    "statement_hash",
    "supersede_problems",
    "user_id_patterns",
    "verify_policy",
]
