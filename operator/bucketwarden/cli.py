"""The bucketwarden command line: offline render/plan/verify/evaluate, file-mode plan/apply, crd, demo, run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bucketwarden import __version__
from bucketwarden._table import format_table
from bucketwarden.errors import BucketWardenError, InvalidSpecError
from bucketwarden.manifests import Manifest, load_manifests
from bucketwarden.policy import (
    PolicyDocument,
    Request,
    evaluate,
    lint_policy,
    lint_spec,
    merge_policy,
    plan_change,
    render_statement,
    verify_policy,
)
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ExemptionKey, ProtectedBucketSpec

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
DEFAULT_ACCOUNT = "123456789012"


class UsageError(BucketWardenError):
    reason = "UsageError"


# --- offline inputs -----------------------------------------------------------------------------------------


def _read_policy(path: str | None) -> PolicyDocument | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if not text.strip():
        return None
    return PolicyDocument.parse(text)


def _one_spec(path: str) -> Manifest:
    manifests = load_manifests(path)
    if len(manifests) != 1:
        raise UsageError(f"{path}: holds {len(manifests)} ProtectedBuckets; this command takes exactly one")
    return manifests[0]


def _parse_role_ids(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        ref, sep, role_id = pair.partition("=")
        if not sep or not ref or not role_id:
            raise UsageError(f"--role-id {pair!r}: expected NAME_OR_ARN=ROLEID, e.g. MyRole=AROAEXAMPLE123456789")
        out[ref] = role_id
    return out


def offline_roles(spec: ProtectedBucketSpec, role_ids: dict[str, str], account: str) -> list[ResolvedRole]:
    """Exempt roles resolved from --role-id flags instead of iam:GetRole."""
    roles = []
    for role in spec.exempt_roles:
        arn = role.arn or f"arn:aws:iam::{account}:role/{role.role_name}"
        role_id = role_ids.get(role.ref) or role_ids.get(role.role_name) or role_ids.get(arn)
        if role_id is None and spec.exemption_key is ExemptionKey.USER_ID:
            raise UsageError(
                f"no RoleId for exempt role {role.ref!r}: pass --role-id {role.ref}=AROA... "
                f"(aws iam get-role --role-name {role.role_name} --query Role.RoleId)"
            )
        roles.append(ResolvedRole(ref=role.ref, name=role.role_name, arn=arn, role_id=role_id))
    return roles


def offline_operator(user_id: str | None, account: str) -> CallerIdentity | None:
    """An operator identity from --operator-user-id: ``AROA...:session`` (or ``AROA...:*``) or ``AIDA...``."""
    if user_id is None:
        return None
    if ":" in user_id and user_id.startswith("AROA"):
        role_id, _, session = user_id.partition(":")
        session = "bucketwarden" if session in ("", "*") else session
        arn = f"arn:aws:sts::{account}:assumed-role/bucketwarden-operator/{session}"
        return CallerIdentity(account=account, arn=arn, user_id=f"{role_id}:{session}")
    return CallerIdentity(account=account, arn=f"arn:aws:iam::{account}:user/bucketwarden-operator", user_id=user_id)


def _offline_inputs(
    args: argparse.Namespace,
) -> tuple[ProtectedBucketSpec, list[ResolvedRole], CallerIdentity | None]:
    spec = _one_spec(args.file).resource.spec
    roles = offline_roles(spec, _parse_role_ids(args.role_id), args.account)
    return spec, roles, offline_operator(args.operator_user_id, args.account)


# --- commands -----------------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    spec, roles, operator = _offline_inputs(args)
    existing = _read_policy(args.existing_policy)
    desired = merge_policy(existing, render_statement(spec, roles, operator), spec.owned_sids)
    findings = lint_spec(spec) + lint_policy(existing, desired, spec.owned_sids)
    for f in findings:
        print(f"{f.severity.lower()}: {f.code}: {f.message}", file=sys.stderr)
    print(desired.to_json(pretty=True))
    return EXIT_ERROR if any(f.severity == "Error" for f in findings) else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    if args.existing_policy is None and not args.offline:
        return _live(args, plan_only=True)
    spec, roles, operator = _offline_inputs(args)
    existing = _read_policy(args.existing_policy)
    desired = merge_policy(existing, render_statement(spec, roles, operator), spec.owned_sids)
    plan = plan_change(existing, desired)
    if not plan.changes:
        print(f"{spec.bucket_name}: no change")
        return EXIT_OK
    print(f"{spec.bucket_name}: would {plan.action} the bucket policy")
    print(plan.diff, end="")
    return EXIT_CHANGES


def cmd_verify(args: argparse.Namespace) -> int:
    spec, roles, operator = _offline_inputs(args)
    policy = _read_policy(args.policy)
    result = verify_policy(spec, roles, operator, policy)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "ok": result.ok,
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
        print("verification: " + ("OK" if result.ok else "FAILED"))
    return EXIT_OK if result.ok else EXIT_ERROR


def verification_table(result: Any) -> str:
    rows = [
        (
            r.scenario.name,
            r.scenario.expect,
            r.evaluation.decision,
            r.evaluation.sid or "-",
            "ok" if r.passed else "FAIL",
        )
        for r in result.results
    ]
    return format_table(("SCENARIO", "EXPECT", "DECISION", "SID", "RESULT"), rows)


def _parse_context(pairs: Sequence[str]) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--context {pair!r}: expected KEY=VALUE, e.g. aws:SourceIp=198.51.100.7")
        context.setdefault(key.lower(), []).append(value)
    return context


def cmd_evaluate(args: argparse.Namespace) -> int:
    policy = _read_policy(args.policy)
    if policy is None:
        raise UsageError(f"{args.policy}: empty policy")
    context = {k: tuple(v) if len(v) > 1 else v[0] for k, v in _parse_context(args.context).items()}
    evaluation = evaluate(policy, Request.of(args.action, args.resource, context))
    if args.output == "json":
        print(json.dumps({"decision": evaluation.decision, "sid": evaluation.sid}))
    else:
        print(f"{evaluation.decision}" + (f" (Sid {evaluation.sid})" if evaluation.sid else ""))
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    return _live(args, plan_only=False)


def _live(args: argparse.Namespace, *, plan_only: bool) -> int:
    """File mode: reconcile manifests once against AWS (or AWS_ENDPOINT_URL)."""
    from bucketwarden.filemode import run_file_mode

    return run_file_mode(args.file, plan_only=plan_only, output=getattr(args, "output", "table"))


def cmd_crd(args: argparse.Namespace) -> int:
    from bucketwarden.crd import render_crd_yaml

    print(render_crd_yaml(), end="")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from bucketwarden.demo import run_demo

    return run_demo(kubernetes=not args.no_kubernetes)


def cmd_run(args: argparse.Namespace) -> int:
    from bucketwarden.k8s import run_operator

    return run_operator(namespaces=args.namespace or None)


# --- argument parsing ---------------------------------------------------------------------------------------


def _offline_flags(p: argparse.ArgumentParser, *, policy_flag: str) -> None:
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest (YAML)")
    if policy_flag == "existing":
        p.add_argument("--existing-policy", metavar="FILE", help="the bucket's current policy (JSON)")
    else:
        p.add_argument("--policy", metavar="FILE", required=True, help="the bucket policy to verify (JSON)")
    p.add_argument(
        "--role-id",
        action="append",
        default=[],
        metavar="NAME_OR_ARN=ROLEID",
        help="RoleId of an exempt role (repeatable)",
    )
    p.add_argument("--operator-user-id", metavar="ID", help="the operator's aws:userid; omit for no operator exemption")
    p.add_argument("--account", default=DEFAULT_ACCOUNT, help="account id used for role names (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bucketwarden", description="Keep S3 bucket policies IP-restricted without breaking AWS Backup."
    )
    parser.add_argument("--version", action="version", version=f"bucketwarden {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="print the bucket policy a ProtectedBucket produces (offline)")
    _offline_flags(p, policy_flag="existing")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "plan",
        help="show what would change; exit 0 no change, 2 changes, 1 errors",
        description="Offline with --existing-policy or --offline; otherwise against AWS (or AWS_ENDPOINT_URL), "
        "where -f may be a file or a folder of manifests.",
    )
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest file or folder")
    p.add_argument("--existing-policy", metavar="FILE", help="offline: the bucket's current policy (JSON)")
    p.add_argument("--offline", action="store_true", help="offline, against an empty policy")
    p.add_argument("--role-id", action="append", default=[], metavar="NAME_OR_ARN=ROLEID")
    p.add_argument("--operator-user-id", metavar="ID")
    p.add_argument("--account", default=DEFAULT_ACCOUNT)
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("verify", help="check a policy against the spec's scenario matrix (offline)")
    _offline_flags(p, policy_flag="policy")
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("evaluate", help="evaluate one request against a bucket policy (offline)")
    p.add_argument("--policy", required=True, metavar="FILE")
    p.add_argument("--action", required=True, help="e.g. s3:GetObject")
    p.add_argument("--resource", required=True, help="e.g. arn:aws:s3:::bucket/key")
    p.add_argument("--context", action="append", default=[], metavar="KEY=VALUE", help="request context (repeatable)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("apply", help="reconcile manifests once against AWS; exit 0 when every bucket is Ready")
    p.add_argument("-f", "--file", required=True, help="ProtectedBucket manifest file or folder")
    p.add_argument("--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("crd", help="print the ProtectedBucket CustomResourceDefinition")
    p.set_defaults(func=cmd_crd)

    p = sub.add_parser("demo", help="replay the AWS Backup story on embedded AWS and Kubernetes emulators")
    p.add_argument("--no-kubernetes", action="store_true", help="skip the operator part (reconciler only)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run the operator (kubeconfig or in-cluster service account)")
    p.add_argument("--namespace", action="append", metavar="NS", help="watch this namespace (repeatable); default all")
    p.set_defaults(func=cmd_run)
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
    except (BucketWardenError, InvalidSpecError) as exc:
        print(f"bucketwarden {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
