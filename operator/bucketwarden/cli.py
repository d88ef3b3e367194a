"""The bucketwarden command line: offline render/plan/verify/evaluate, file-mode plan/apply, crd, demo, run."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from bucketwarden import __version__
from bucketwarden._flags import add_repeatable
from bucketwarden._table import verification_table
from bucketwarden.errors import BucketWardenError, InvalidSpecError, PolicyParseError
from bucketwarden.exitcodes import ExitCode, exit_code_help
from bucketwarden.facts import UsageError as UsageError
from bucketwarden.facts import (
    offline_operator as offline_operator,
)
from bucketwarden.facts import (
    offline_roles,
    parse_role_arns,
    parse_role_ids,
    principal_context,
)
from bucketwarden.formats import render_format
from bucketwarden.manifests import STDIN, Manifest, load_manifests
from bucketwarden.policy import (
    ADDRESS_KEYS,
    DATE_KEYS,
    PolicyDocument,
    Request,
    Verification,
    evaluate,
    is_known_condition_key,
    lint_policy,
    lint_spec,
    merge_policy,
    parse_address,
    parse_date,
    ranges_from_ip_ranges_json,
    render_statement,
    verify_policy,
    with_aws_source_ranges,
)
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = ExitCode.OK, ExitCode.FAILED, ExitCode.CHANGES_PENDING
DEFAULT_ACCOUNT = "123456789012"
# What `bucketwarden demo` imports: the test kit (testkit/, never in the wheel or the image), moto (serving AWS
# through flask) and kmock (the Kubernetes emulator), which the kit pins.
DEMO_MODULES = ("bucketwarden_testkit", "moto", "flask", "flask_cors")
DEMO_INSTALL = "from a clone of the repository: make install, or pip install -c constraints.txt -e ./testkit"
DEMO_KUBERNETES_MODULES = ("kmock",)
PROVE_MODULES = ("z3",)  # verify --prove, audit --prove: the prove extra
EXIT_USAGE = ExitCode.USAGE


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with ExitCode.USAGE: its default 2 would read as "changes pending"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


# --- offline inputs -----------------------------------------------------------------------------------------


def _read_policy_text(path: str) -> str | None:
    """A policy file's text, checked: every error names the file, and a JSON syntax error its line."""
    try:
        text = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if not text.strip():
        return None
    try:
        json.loads(text)
    except ValueError as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else path
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise PolicyParseError(f"{where}: the bucket policy is not valid JSON: {msg}") from None
    try:
        PolicyDocument.parse(text)
    except PolicyParseError as exc:
        raise PolicyParseError(f"{path}: {exc.message}") from None
    return text


def _read_policy(path: str | None) -> PolicyDocument | None:
    text = None if path is None else _read_policy_text(path)
    return None if text is None else PolicyDocument.parse(text)


def _one_spec(path: str) -> Manifest:
    manifests = load_manifests(path)
    if len(manifests) != 1:
        raise UsageError(f"{path}: holds {len(manifests)} ProtectedBuckets; this command takes exactly one")
    return manifests[0]


def read_aws_ip_ranges(path: str | None) -> tuple[str, ...]:
    """--aws-ip-ranges FILE: the prefixes of the user's copy of AWS's ip-ranges.json (never fetched)."""
    if path is None:
        return ()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--aws-ip-ranges {path}: {exc.strerror}") from None
    try:
        return ranges_from_ip_ranges_json(text)
    except ValueError as exc:
        raise UsageError(f"--aws-ip-ranges {path}: {exc}") from None


def _offline_inputs(
    args: argparse.Namespace,
) -> tuple[ProtectedBucketSpec, list[ResolvedRole], CallerIdentity | None]:
    spec = with_aws_source_ranges(_one_spec(args.file).resource.spec, read_aws_ip_ranges(args.aws_ip_ranges))
    role_arns = parse_role_arns(args.role_arn)
    roles = offline_roles(spec, parse_role_ids(args.role_id), args.account, role_arns)
    return spec, roles, offline_operator(args.operator_user_id, args.account)


# The facts every command that judges a policy takes, with the same names and meanings (a test holds them equal).
FACT_FLAGS = ("--role-id", "--role-arn", "--operator-user-id", "--account", "--aws-ip-ranges")
# Facts a run against AWS looks up itself (iam:GetRole, sts:GetCallerIdentity): stating them there is refused.
LOOKED_UP_LIVE = ("role_id", "role_arn", "operator_user_id")


def _refuse_offline_facts_live(args: argparse.Namespace) -> None:
    given = [f"--{name.replace('_', '-')}" for name in LOOKED_UP_LIVE if getattr(args, name)]
    if args.account != DEFAULT_ACCOUNT:
        given.append("--account")
    if given:
        raise UsageError(
            f"{', '.join(given)}: against AWS these facts are looked up (iam:GetRole, sts:GetCallerIdentity); "
            "state them only offline (plan --offline or --existing-policy, render, verify)"
        )


# --- commands -----------------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    spec, roles, operator = _offline_inputs(args)
    existing = _read_policy(args.existing_policy)
    ours = render_statement(spec, roles, operator)
    desired = merge_policy(existing, ours, spec.owned_sids)
    findings = lint_spec(spec) + lint_policy(existing, desired, spec.owned_sids)
    verification = verify_policy(spec, roles, operator, desired)
    findings += [f for f in verification.findings if f not in findings]
    for f in findings:
        print(f"{f.severity.lower()}: {f.code}: {f.message}", file=sys.stderr)
    if verification.verdict == "Fail":
        # A policy that fails verification is not something to pipe into a PUT: print nothing on stdout.
        for line in _counterexample_lines(verification):
            print(line, file=sys.stderr)
        print("bucketwarden render: error: the rendered policy fails verification; nothing printed", file=sys.stderr)
        return EXIT_ERROR
    print(render_format(args.format, desired, ours, spec))
    return EXIT_ERROR if any(f.severity == "Error" for f in findings) else EXIT_OK


def _counterexample_lines(verification: Verification) -> list[str]:
    lines = [f"counterexample: {c.describe()}" for c in verification.counterexamples]
    shown = {(c.action, c.resource) for c in verification.counterexamples}
    for r in verification.failures:
        request = r.scenario.request
        if (request.action, request.resource) not in shown:
            decided = f" by {r.evaluation.label}" if r.evaluation.label else ""
            lines.append(
                f"counterexample: {r.scenario.description}: {request.action} on {request.resource} expected "
                f"{r.scenario.expect}, got {r.evaluation.decision}{decided}"
            )
    lines += [f"inconclusive: {u.describe()}" for u in verification.unknowns]
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    if args.existing_policy is None and not args.offline:
        return _live(args, plan_only=True)
    return plan_offline(args)


def plan_offline(args: argparse.Namespace) -> int:
    """The live plan's decision path (lint, verify, size, lockout), against an in-memory AWS seeded from flags."""
    from bucketwarden.dryrun import DryRunAws, offline_aws, offline_reconciler
    from bucketwarden.filemode import run_manifests

    manifests = [_one_spec(args.file)] if args.existing_policy is not None else load_manifests(args.file)
    manifests = with_ranges(manifests, read_aws_ip_ranges(args.aws_ip_ranges))
    role_ids = parse_role_ids(args.role_id)
    role_arns = parse_role_arns(args.role_arn)
    operator = offline_operator(args.operator_user_id, args.account)
    specs = [m.resource.spec for m in manifests]
    # Resolved up front: a missing --role-id is a usage error before anything runs, not a per-bucket failure.
    identities = {
        spec.bucket_name: (offline_roles(spec, role_ids, args.account, role_arns), operator) for spec in specs
    }
    policies = {specs[0].bucket_name: _read_policy_text(args.existing_policy)} if args.existing_policy else {}
    if operator is None and any(spec.exempt_operator for spec in specs):
        print(
            "note: no --operator-user-id: the operator is neither exempted nor checked for lockout, as in render",
            file=sys.stderr,
        )
    aws = offline_aws(specs, policies, account=args.account)
    reconciler = offline_reconciler(DryRunAws(aws), identities)
    return run_manifests(
        reconciler, manifests, plan=True, output=args.output, show_unchanged=args.show_unchanged, offline=True
    )


def with_ranges(manifests: Sequence[Manifest], ranges: Sequence[str]) -> list[Manifest]:
    """Each manifest with its spec narrowed to --aws-ip-ranges (see with_aws_source_ranges)."""
    if not ranges:
        return list(manifests)
    out = []
    for m in manifests:
        resource = m.resource.model_copy(update={"spec": with_aws_source_ranges(m.resource.spec, ranges)})
        out.append(dataclasses.replace(m, resource=resource))
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    spec, roles, operator = _offline_inputs(args)
    policy = _read_policy(args.policy)
    result = verify_policy(spec, roles, operator, policy)
    proof = None
    if args.prove:
        if missing_modules(PROVE_MODULES):
            print(
                "bucketwarden verify: --prove needs the prove extra: pip install 'bucketwarden[prove]'", file=sys.stderr
            )
            return ExitCode.UNAVAILABLE
        proof = _prove_or_exit(spec, roles, operator, policy)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "verdict": result.verdict,
                    "verdicts": result.verdicts,
                    **({"prover": proof.to_json()} if proof is not None else {}),
                    "counterexamples": [
                        {
                            "principal": c.principal,
                            "action": c.action,
                            "resource": c.resource,
                            "deniedBy": c.label,
                            "promise": c.promise,
                            "context": {k: list(v) for k, v in sorted(c.context.items())},
                        }
                        for c in result.counterexamples
                    ],
                    "unknown": [
                        {
                            "principal": u.principal,
                            "statement": u.label,
                            "keys": list(u.keys),
                            "action": u.action,
                            "promise": u.promise,
                        }
                        for u in result.unknowns
                    ],
                    "scenarios": [
                        {
                            "name": r.scenario.name,
                            "description": r.scenario.description,
                            "expect": r.scenario.expect,
                            "decision": r.evaluation.decision,
                            "sid": r.evaluation.sid,
                            "passed": r.passed,
                        }
                        for r in result.results
                    ],
                    "findings": [f.to_k8s() for f in result.findings],
                },
                indent=2,
            )
        )
    else:
        print(verification_table(result))
        for f in result.findings:
            print(f"{f.severity.lower()}: {f.code}: {f.message}")
        for line in _counterexample_lines(result):
            print(line)
        for promise, promise_verdict in result.verdicts.items():
            print(f"verdict {promise}: {promise_verdict}")
        if proof is not None:
            for line in proof.lines():
                print(line)
        verdict = {"Pass": "OK", "Fail": "FAILED", "Unknown": "INCONCLUSIVE (" + ", ".join(result.unknown_keys) + ")"}
        print("verification: " + verdict[result.verdict])
    # Unknown never blocks a write, so it is not an error either.
    return EXIT_OK if result.ok else EXIT_ERROR


def _parse_context(pairs: Sequence[str]) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--context {pair!r}: expected KEY=VALUE, e.g. aws:SourceIp=198.51.100.7")
        context.setdefault(key.lower(), []).append(value)
    return context


def _check_context(context: dict[str, list[str]]) -> None:
    """Reject a value the key can never carry (a usage error, exit 64); warn on a key bucketwarden does not know."""
    for key, values in context.items():
        for value in values:
            if key in ADDRESS_KEYS and parse_address(value) is None:
                raise UsageError(f"--context {key}={value}: {value!r} is not an IPv4 or IPv6 address")
            if key in DATE_KEYS and parse_date(value) is None:
                raise UsageError(
                    f"--context {key}={value}: {value!r} is not a date (ISO 8601 such as 2026-12-01T10:00:00Z, "
                    "or epoch seconds)"
                )
        if not is_known_condition_key(key):
            print(
                f"warning: context key {key!r} is not a condition key bucketwarden knows (IAM global or Amazon S3); "
                "it is used as given, check its spelling",
                file=sys.stderr,
            )


def cmd_evaluate(args: argparse.Namespace) -> int:
    policy = _read_policy(args.policy)
    if policy is None:
        raise UsageError(f"{args.policy}: empty policy")
    given = _parse_context(args.context)
    try:
        _check_context(given)
        who = principal_context(args.principal_arn) if args.principal_arn else {}
    except UsageError as exc:
        print(f"bucketwarden evaluate: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    context: dict[str, str | tuple[str, ...]] = {k.lower(): v for k, v in who.items()}
    context.update({k: tuple(v) if len(v) > 1 else v[0] for k, v in given.items()})  # --context wins
    evaluation = evaluate(policy, Request.of(args.action, args.resource, context))
    if args.output == "json":
        print(json.dumps({"decision": evaluation.decision, "sid": evaluation.sid}))
    elif evaluation.decision == "NoMatch":
        print(
            "NoMatch: no statement applies: not denied by this policy (the caller's identity policies, "
            "SCPs and Block Public Access decide the rest)"
        )
    else:
        print(f"{evaluation.decision}" + (f" (Sid {evaluation.sid})" if evaluation.sid else ""))
    return EXIT_OK


def _prove_or_exit(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    policy: PolicyDocument | None,
) -> Any:
    from bucketwarden.policy.prove import ProverUnavailableError, prove_policy

    try:
        return prove_policy(spec, roles, operator, policy)
    except ProverUnavailableError as exc:
        raise UsageError(exc.message) from None


def cmd_apply(args: argparse.Namespace) -> int:
    return _live(args, plan_only=False)


def _live(args: argparse.Namespace, *, plan_only: bool) -> int:
    """File mode: reconcile manifests once against AWS (or AWS_ENDPOINT_URL)."""
    from bucketwarden.filemode import run_file_mode

    _refuse_offline_facts_live(args)
    return run_file_mode(
        args.file,
        aws_ranges=read_aws_ip_ranges(args.aws_ip_ranges),
        plan_only=plan_only,
        output=getattr(args, "output", "table"),
        show_unchanged=getattr(args, "show_unchanged", False),
        exempt_operator_role=getattr(args, "exempt_operator_role", None),
        exempt_caller=not getattr(args, "no_exempt_caller", False),
    )


def _exemption_flags(p: argparse.ArgumentParser) -> None:
    """Who file mode exempts as "the operator"; by default whoever runs it (sts:GetCallerIdentity)."""
    p.add_argument(
        "--exempt-operator-role",
        metavar="ARN",
        help="exempt every session of this role (the in-cluster operator's) instead of the caller",
    )
    p.add_argument(
        "--no-exempt-caller",
        action="store_true",
        help="do not exempt the caller's own principal (it may then be locked out by the policy it writes)",
    )


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from bucketwarden.bootstrap import run_bootstrap

    return run_bootstrap(args.file, args.operator_role)


def cmd_audit(args: argparse.Namespace) -> int:
    from bucketwarden.audit import AuditUsageError, run_audit

    _refuse_offline_facts_live(args)
    args.aws_ranges = read_aws_ip_ranges(args.aws_ip_ranges)
    try:
        return run_audit(args)
    except AuditUsageError as exc:  # a bad flag value is a usage error, whatever module notices it
        raise UsageError(exc.message) from exc


def cmd_grant(args: argparse.Namespace) -> int:
    """Print a TenantPolicy granting namespaces their buckets (a cluster admin pipes it to kubectl apply)."""
    import yaml
    from pydantic import ValidationError

    from bucketwarden.manifests import format_validation_error
    from bucketwarden.tenancy import render_grant

    name = args.name or f"grant-{args.namespace[0]}".replace("*", "all").replace("?", "x")[:253]
    try:
        manifest = render_grant(
            name,
            args.namespace,
            args.bucket,
            assume_role_arns=args.assume_role_arn or (),
            external_id=args.external_id,
            source_allow_lists=args.source_allow_list or (),
        )
    except ValidationError as exc:
        raise UsageError(format_validation_error(exc)) from exc
    print(yaml.safe_dump(manifest, sort_keys=False), end="")
    return EXIT_OK


def cmd_crd(args: argparse.Namespace) -> int:
    from bucketwarden.crd import render_crd_yaml

    print(render_crd_yaml(args.kind), end="")
    return EXIT_OK


def missing_modules(names: Sequence[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def cmd_demo(args: argparse.Namespace) -> int:
    needed = DEMO_MODULES + (() if args.no_kubernetes else DEMO_KUBERNETES_MODULES)
    missing = missing_modules(needed)
    if missing:
        print(
            f"bucketwarden demo: needs the test kit (missing: {', '.join(missing)}): {DEMO_INSTALL}",
            file=sys.stderr,
        )
        return ExitCode.UNAVAILABLE
    from bucketwarden_testkit.demo import run_demo

    return run_demo(kubernetes=not args.no_kubernetes)


def cmd_run(args: argparse.Namespace) -> int:
    from bucketwarden.k8s import run_operator

    return run_operator(namespaces=args.namespace or None)


# --- argument parsing ---------------------------------------------------------------------------------------


# Flag declarations, parallel to audit/_cli.py's add_arguments (audit takes both).
def add_fact_flags(p: argparse.ArgumentParser) -> None:
    """The facts every judging command takes (FACT_FLAGS): plan, render, verify, apply and audit alike."""
    add_repeatable(p, "--role-id", metavar="NAME_OR_ARN=ROLEID", help="RoleId of an exempt role (repeatable)")
    add_repeatable(
        p,
        "--role-arn",
        metavar="NAME=ARN",
        help="full ARN of an exempt role given by name, e.g. one with a path (role/service-role/...) (repeatable)",
    )
    p.add_argument("--operator-user-id", metavar="ID", help="the operator's aws:userid; omit for no operator exemption")
    p.add_argument("--account", default=DEFAULT_ACCOUNT, help="account id used for role names (default %(default)s)")
    p.add_argument(
        "--aws-ip-ranges",
        metavar="FILE",
        help="your copy of AWS's ip-ranges.json (never fetched): AWS Backup's aws:SourceIp is judged over its "
        "public prefixes instead of every public address",
    )


def _offline_flags(p: argparse.ArgumentParser, *, policy_flag: str) -> None:
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest (YAML); - reads standard input")
    if policy_flag == "existing":
        p.add_argument("--existing-policy", metavar="FILE", help="the bucket's current policy (JSON)")
    else:
        p.add_argument("--policy", metavar="FILE", required=True, help="the bucket policy to verify (JSON)")
    add_fact_flags(p)


def _command(
    sub: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
    exit_codes: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand that runs ``func``; ``exit_codes`` ends its --help with the exit-code table."""
    table = {"epilog": exit_code_help(), "formatter_class": argparse.RawDescriptionHelpFormatter} if exit_codes else {}
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description, **table)
    p.set_defaults(func=func)
    return p


def _add_judging_commands(sub: Any) -> None:
    """render, plan, verify and evaluate: what a policy would be, and whether it keeps the spec's promises."""
    p = _command(sub, "render", cmd_render, help="print the bucket policy a ProtectedBucket produces (offline)")
    _offline_flags(p, policy_flag="existing")
    p.add_argument(
        "--format",
        choices=("policy", "statement", "terraform-json", "crossplane"),
        default="policy",
        help="policy: the merged document; statement: ours alone; terraform-json: an aws_iam_policy_document "
        "data source; crossplane: a BucketPolicy (default %(default)s)",
    )

    p = _command(
        sub,
        "plan",
        cmd_plan,
        help="show what apply would do; exit 0 no change, 2 changes pending, 1 a check fails",
        description="apply's checks and verdicts, writing nothing. Offline with --existing-policy (one manifest) "
        "or --offline (any number, against empty policies); otherwise against AWS (or AWS_ENDPOINT_URL).",
        exit_codes=True,
    )
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest file or folder; - reads stdin")
    p.add_argument("--existing-policy", metavar="FILE", help="offline: the bucket's current policy (JSON)")
    p.add_argument("--offline", action="store_true", help="offline, against an empty policy")
    add_fact_flags(p)
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.add_argument("--show-unchanged", action="store_true", help="also list the buckets already in sync")
    _exemption_flags(p)

    p = _command(
        sub,
        "verify",
        cmd_verify,
        help="check a policy against the spec: AWS Backup's requests on the whole bucket, allowed networks (offline)",
    )
    _offline_flags(p, policy_flag="policy")
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.add_argument(
        "--prove",
        action="store_true",
        help="also run the symbolic prover (z3, the 'prove' extra): a proof over ALL modelled requests, or a "
        "counterexample",
    )

    p = _command(sub, "evaluate", cmd_evaluate, help="evaluate one request against a bucket policy (offline)")
    p.add_argument("--policy", required=True, metavar="FILE")
    p.add_argument("--action", required=True, help="e.g. s3:GetObject")
    p.add_argument("--resource", required=True, help="e.g. arn:aws:s3:::bucket/key")
    add_repeatable(p, "--context", metavar="KEY=VALUE", help="request context (repeatable)")
    p.add_argument(
        "--principal-arn",
        metavar="ARN",
        help="the caller: an IAM user/role/root ARN or an assumed-role session ARN (sets aws:PrincipalArn and more)",
    )
    p.add_argument("--output", choices=("text", "json"), default="text")


def _add_aws_commands(sub: Any) -> None:
    """apply, audit and bootstrap: the commands that read or write real buckets, with the caller's credentials."""
    p = _command(
        sub, "apply", cmd_apply, help="reconcile manifests once against AWS; exit 0 when every bucket is Ready"
    )
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest file or folder; - reads stdin")
    p.add_argument("--output", choices=("table", "json"), default="table")
    add_fact_flags(p)
    _exemption_flags(p)

    from bucketwarden.audit import add_arguments as add_audit_arguments

    p = _command(
        sub,
        "audit",
        cmd_audit,
        help="find every bucket that breaks AWS Backup (read-only); exit 1 if any does",
        description="Reads every bucket's policy, versioning and location (never writes) and reports, per bucket, "
        "whether AWS Backup's roles are denied; --emit-manifests DIR writes ProtectedBuckets to onboard them.",
    )
    add_audit_arguments(p)
    add_fact_flags(p)

    p = _command(
        sub,
        "bootstrap",
        cmd_bootstrap,
        help="write the policy once so the in-cluster operator is let in (for a bucket that locks it out)",
        description="Run once, by someone the bucket's current policy allows (an admin on an allowed network, or "
        "the account root): writes the policy with every session of the operator's role exempted, verifies it, "
        "and prints what it did. Uses AWS (or AWS_ENDPOINT_URL) with your own credentials.",
    )
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest file or folder")
    p.add_argument("--operator-role", required=True, metavar="ARN", help="the in-cluster operator's IAM role ARN")


def _add_generating_commands(sub: Any) -> None:
    """grant, crd, demo and run: the commands that generate or start something rather than judge a policy."""
    p = _command(
        sub,
        "grant",
        cmd_grant,
        help="print a TenantPolicy granting namespaces their buckets (pipe to kubectl apply -f -)",
        description="Cluster admins only: without a TenantPolicy granting its namespace the bucket (and any "
        "assumeRoleArn or SourceAllowList it names), a ProtectedBucket is NotAuthorized and makes no AWS call.",
    )
    p.add_argument("--namespace", action="append", required=True, metavar="NS", help="namespace or glob (repeatable)")
    p.add_argument("--bucket", action="append", required=True, metavar="GLOB", help="bucket name or glob (repeatable)")
    p.add_argument("--assume-role-arn", action="append", metavar="ARN", help="a role they may assume (repeatable)")
    p.add_argument("--external-id", help="the sts:ExternalId to send when assuming those roles")
    p.add_argument("--source-allow-list", action="append", metavar="NAME", help="SourceAllowList they may use")
    p.add_argument("--name", help="the TenantPolicy's name (default: grant-<first namespace>)")

    p = _command(sub, "crd", cmd_crd, help="print a CustomResourceDefinition (ProtectedBucket by default)")
    p.add_argument("--kind", choices=("ProtectedBucket", "SourceAllowList", "TenantPolicy"), default="ProtectedBucket")

    p = _command(sub, "demo", cmd_demo, help="replay the AWS Backup story on embedded AWS and Kubernetes emulators")
    p.add_argument("--no-kubernetes", action="store_true", help="skip the operator part (reconciler only)")

    p = _command(sub, "run", cmd_run, help="run the operator (kubeconfig or in-cluster service account)")
    p.add_argument("--namespace", action="append", metavar="NS", help="watch this namespace (repeatable); default all")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bucketwarden",
        description="Keep S3 bucket policies IP-restricted without breaking AWS Backup.",
        epilog=exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bucketwarden {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_judging_commands(sub)
    _add_aws_commands(sub)
    _add_generating_commands(sub)
    return parser


def _configure_cli_logging() -> None:
    """BUCKETWARDEN_LOG_LEVEL=DEBUG shows every AWS call and each reconcile's decision on stderr (not for `run`,
    which configures kopf's logging itself)."""
    level = os.environ.get("BUCKETWARDEN_LOG_LEVEL", "").upper()
    if level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("botocore", "boto3", "urllib3"):  # request dumps (and credentials) stay out
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        _configure_cli_logging()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UsageError, InvalidSpecError, PolicyParseError) as exc:
        # The command could not run as given (a flag, or an input file): not a verdict about a bucket.
        print(f"bucketwarden {args.command}: error: {exc.message}", file=sys.stderr)
        return ExitCode.USAGE
    except BucketWardenError as exc:
        print(f"bucketwarden {args.command}: error: {exc.message}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
