"""Hypothesis strategies for bucket policies: random statements and documents, and variants that keep their meaning.

Everything is drawn as plain JSON objects (what S3 returns), so tests can feed them to PolicyDocument.from_obj
or serialise them first. `equivalent_variants` rewrites a document in every way that must not change its
meaning (facts 2 and 19): statement, key and value order, "x" vs ["x"], condition key case, action case.

Field values are drawn from pools of realistic shapes rather than built draw by draw: hypothesis pays per draw,
and a few draws per statement keep the property tests fast while still covering every field form.
"""

from __future__ import annotations

import os
import string
from random import Random
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.shared import OUR_SID

JsonObj = dict[str, Any]

# BUCKETWARDEN_HYPOTHESIS_EXAMPLES raises the examples per property for a longer run; no deadline on a shared machine.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("BUCKETWARDEN_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

ACCOUNT = "111122223333"
BUCKET = "awsbackup-test-001"
OWNED_SIDS = (OUR_SID, "SourceIPRestriction001")
# A small pool makes Sid collisions (duplicates, owned Sids) likely; free text covers the rest.
SID_POOL = ("AllowRead", "CrossAccount", "DenyHttp", "Foreign1", "Foreign2", *OWNED_SIDS)

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
PRINCIPALS: tuple[Any, ...] = (
    "*",
    {"AWS": "*"},
    {"AWS": ACCOUNT},
    {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    {"AWS": [ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:user/alice"]},
    # Bare unique ids: how a statement shows principals deleted since it was written (fact 21).
    {"AWS": "AIDAJQABLZS4A3QDU576Q"},
    {"AWS": ["AROAEXAMPLEDELETED001", f"arn:aws:iam::{ACCOUNT}:root"]},
    {"Service": "cloudfront.amazonaws.com"},
    {"Service": ["logging.s3.amazonaws.com", "backup.amazonaws.com"]},
    {"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
    {"Federated": "cognito-identity.amazonaws.com"},
    {"AWS": f"arn:aws:iam::{ACCOUNT}:root", "Service": "backup.amazonaws.com"},
)
ACTIONS: tuple[Any, ...] = (
    "s3:*",
    "s3:GetObject",
    ["s3:GetObject"],
    ["s3:GetObject", "s3:GetObjectVersion"],
    ["s3:ListBucket", "s3:Get*"],
    "s3:PutBucketPolicy",
    ["s3:DeleteObject", "s3:PutObject", "s3:GetObject"],
    ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
)
RESOURCES: tuple[Any, ...] = (
    f"arn:aws:s3:::{BUCKET}",
    f"arn:aws:s3:::{BUCKET}/*",
    [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    [f"arn:aws:s3:::{BUCKET}/reports/*"],
    f"arn:aws:s3:::{BUCKET}/${{aws:username}}/*",
    "*",
)
# (operator, keys) entries, one per operator, covering string/list/bool/number values, IfExists, set operators.
CONDITION_ENTRIES: tuple[tuple[str, JsonObj], ...] = (
    ("StringEquals", {"aws:SourceArn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/EDFDVBD6EXAMPLE"}),
    ("StringNotEquals", {"aws:SourceVpce": ["vpce-1a2b3c4d", "vpce-5e6f7a8b"], "aws:SourceVpc": "vpc-0abc1234"}),
    ("StringEqualsIgnoreCase", {"s3:prefix": "Home/"}),
    ("StringLike", {"s3:prefix": ["home/*", "a?c"]}),
    ("StringNotLike", {"aws:userId": ["AROASAMPLESAMPLESAMPL:*", "AIDAEXAMPLEUSER000001"]}),
    ("StringNotLikeIfExists", {"aws:userId": "AROAOTHEROTHEROTHER01:*"}),
    ("ForAnyValue:StringLike", {"aws:PrincipalOrgPaths": "o-a1b2c3/r-ab12/*"}),
    ("ForAllValues:StringEquals", {"aws:TagKeys": ["team", "env"]}),
    ("ArnLike", {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}),
    ("ArnNotLike", {"aws:PrincipalArn": [ROLE_ARN, "arn:aws:iam::*:role/Admin"]}),
    ("IpAddress", {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32", "203.0.113.7"]}),
    ("NotIpAddress", {"aws:SourceIp": ["192.0.2.0/24", "198.51.100.0/24"]}),
    ("NotIpAddressIfExists", {"aws:SourceIp": "198.51.100.0/24"}),
    ("Bool", {"aws:SecureTransport": False, "aws:ViaAWSService": "true"}),
    ("BoolIfExists", {"aws:MultiFactorAuthPresent": [True, "false"]}),
    ("Null", {"s3:x-amz-server-side-encryption": True}),
    ("NumericLessThan", {"s3:TlsVersion": 1.2, "s3:max-keys": "100"}),
    ("NumericGreaterThanEquals", {"s3:signatureAge": [600000, 3600]}),
    ("DateGreaterThan", {"aws:CurrentTime": "2024-01-01T00:00:00Z", "aws:EpochTime": 1700000000}),
)
OPERATORS = tuple(op for op, _ in CONDITION_ENTRIES)

sids = st.one_of(st.sampled_from(SID_POOL), st.text(string.ascii_letters + string.digits, min_size=1, max_size=12))
_OPTIONAL_SIDS = st.one_of(st.none(), sids)


def conditions() -> st.SearchStrategy[JsonObj]:
    """A Condition block of one to three operators."""
    entries = st.lists(st.sampled_from(CONDITION_ENTRIES), min_size=1, max_size=3, unique_by=lambda e: e[0])
    return entries.map(lambda chosen: {op: dict(keys) for op, keys in chosen})


_CONDITIONS = conditions()


@st.composite
def statements(draw: st.DrawFn, *, sid: st.SearchStrategy[str | None] | None = None) -> JsonObj:
    """One statement as JSON: with or without Sid, Principal or NotPrincipal, Action or NotAction, and so on."""
    obj: JsonObj = {}
    chosen_sid = draw(sid if sid is not None else _OPTIONAL_SIDS)
    if chosen_sid is not None:
        obj["Sid"] = chosen_sid
    effect = draw(st.sampled_from(("Allow", "Deny")))
    obj["Effect"] = effect
    # The shape flags come from one draw: NotPrincipal (valid with Deny only), NotAction, NotResource, Condition.
    shape = draw(st.integers(min_value=0, max_value=15))
    obj["NotPrincipal" if effect == "Deny" and shape & 1 else "Principal"] = draw(st.sampled_from(PRINCIPALS))
    obj["NotAction" if shape & 2 else "Action"] = draw(st.sampled_from(ACTIONS))
    obj["NotResource" if shape & 4 else "Resource"] = draw(st.sampled_from(RESOURCES))
    if shape & 8:
        obj["Condition"] = draw(_CONDITIONS)
    return obj


_STATEMENTS = statements()


def documents(
    *, min_statements: int = 1, max_statements: int = 6, statement: st.SearchStrategy[JsonObj] | None = None
) -> st.SearchStrategy[JsonObj]:
    """A whole bucket policy as JSON, Version 2012-10-17, sometimes with an Id."""
    return st.fixed_dictionaries(
        {
            "Version": st.just("2012-10-17"),
            "Statement": st.lists(
                statement if statement is not None else _STATEMENTS, min_size=min_statements, max_size=max_statements
            ),
        },
        optional={"Id": st.sampled_from(("Policy1", "S3PolicyId1", "awsbackup-test-001-policy"))},
    )


def foreign_statements(*, owned: tuple[str, ...] = OWNED_SIDS) -> st.SearchStrategy[JsonObj]:
    """Statements bucketwarden does not own: no Sid, or a Sid outside ``owned``."""
    return statements(sid=st.one_of(st.none(), sids.filter(lambda s: s not in owned)))


def owned_statements(*, owned: tuple[str, ...] = OWNED_SIDS) -> st.SearchStrategy[JsonObj]:
    """Statements carrying one of the ``owned`` Sids."""
    return statements(sid=st.sampled_from(owned))


# --- meaning-preserving rewrites ------------------------------------------------------------------------------
# One drawn seed drives every rewrite: drawing each coin flip from hypothesis makes generation far slower, and a
# failing example still reproduces because hypothesis draws (and reports) the seed.


def _recase(rnd: Random, text: str) -> str:
    return "".join(c.swapcase() if rnd.random() < 0.5 else c for c in text)


def _reshape(rnd: Random, value: Any, *, recase: bool = False) -> Any:
    """Shuffle a string-or-list value, maybe repeat an item, and switch between "x" and ["x"]."""
    items = list(value) if isinstance(value, list) else [value]
    rnd.shuffle(items)
    if recase:
        items = [_recase(rnd, v) for v in items]
    if rnd.random() < 0.3:
        items.append(rnd.choice(items))
    if len(set(map(str, items))) == 1 and rnd.random() < 0.5:
        return items[0]
    return items


def _shuffled_keys(rnd: Random, obj: JsonObj) -> JsonObj:
    keys = list(obj)
    rnd.shuffle(keys)
    return {k: obj[k] for k in keys}


def equivalent_statement(rnd: Random, stmt: JsonObj) -> JsonObj:
    """The statement written differently with the same meaning."""
    out: JsonObj = {}
    for field, value in stmt.items():
        if field in ("Action", "NotAction"):
            out[field] = _reshape(rnd, value, recase=True)  # action names are case-insensitive
        elif field in ("Resource", "NotResource"):
            out[field] = _reshape(rnd, value)
        elif field in ("Principal", "NotPrincipal") and isinstance(value, dict):
            out[field] = _shuffled_keys(rnd, {kind: _reshape(rnd, ids) for kind, ids in value.items()})
        elif field == "Condition":
            out[field] = _shuffled_keys(
                rnd,
                {
                    # Condition key names are case-insensitive; their values are not (fact 2).
                    op: _shuffled_keys(rnd, {_recase(rnd, key): _reshape(rnd, vals) for key, vals in keys.items()})
                    for op, keys in value.items()
                },
            )
        else:
            out[field] = value
    return _shuffled_keys(rnd, out)


def equivalent_document(rnd: Random, doc: JsonObj) -> JsonObj:
    """The document written differently with the same meaning: order, shapes and case that IAM ignores."""
    stmts = [equivalent_statement(rnd, s) for s in doc["Statement"]]
    rnd.shuffle(stmts)
    out: JsonObj = {k: v for k, v in doc.items() if k != "Statement"}
    # A lone statement may be written as an object instead of a list.
    out["Statement"] = stmts[0] if len(stmts) == 1 and rnd.random() < 0.5 else stmts
    return _shuffled_keys(rnd, out)


def equivalent_variants(doc: JsonObj) -> st.SearchStrategy[JsonObj]:
    """Same-meaning rewrites of ``doc``."""
    return st.integers(min_value=0, max_value=2**32 - 1).map(lambda seed: equivalent_document(Random(seed), doc))


# --- foreign Deny statements aimed at AWS Backup's requests (the verifier's whole-bucket property) --------------

BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
BACKUP_ROLE_ID = "AROASAMPLESAMPLESAMPL"
# Object keys a generated request may name; the patterns below are written to hit some of them and miss others.
BACKUP_KEYS: tuple[str, ...] = (
    "bucketwarden-verify/object.txt",
    "taxdocuments/2024/return.pdf",
    "taxdocuments/x",
    "reports/q1.csv",
    "public/index.html",
    "a",
    "x",
    "logs/2020-01-01.log",
)
DENY_RESOURCES: tuple[str, ...] = (
    BUCKET_ARN,
    f"{BUCKET_ARN}/*",
    f"{BUCKET_ARN}/taxdocuments/*",
    f"{BUCKET_ARN}/tax*",
    f"{BUCKET_ARN}/report?/*",
    f"{BUCKET_ARN}/*.csv",
    f"{BUCKET_ARN}/public/*",
    f"{BUCKET_ARN}/?",
    "arn:aws:s3:::*/*",
    "arn:aws:s3:::another-bucket/*",
    "*",
)
DENY_ACTIONS: tuple[str, ...] = (
    "s3:*",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:GetObjectVersion",
    "s3:ListBucketVersions",
    "s3:GetBucketVersioning",
    "s3:Get*",
    "s3:List*",
    "s3:Put*",
    "s3:*Object*",
    "s3:GetObject?cl",
    "s3:DeleteObject",
    "s3:PutBucketPolicy",
    "s3:DeleteBucket",
)
# One entry per condition key the verifier models (or must call unknown), with values that hit and miss.
DENY_CONDITIONS: tuple[tuple[str, JsonObj], ...] = (
    ("Bool", {"aws:SecureTransport": "false"}),
    ("BoolIfExists", {"aws:SecureTransport": "false"}),
    ("Bool", {"aws:SecureTransport": "true"}),
    ("StringNotEquals", {"s3:authType": "REST-HEADER"}),
    ("StringEquals", {"s3:authType": "REST-QUERY-STRING"}),
    ("StringNotEquals", {"s3:signatureversion": "AWS4-HMAC-SHA256"}),
    ("NumericLessThan", {"s3:TlsVersion": "1.2"}),
    ("NumericLessThan", {"s3:TlsVersion": "1.3"}),
    ("Null", {"aws:MultiFactorAuthAge": "true"}),
    ("BoolIfExists", {"aws:MultiFactorAuthPresent": "false"}),
    ("DateGreaterThan", {"aws:CurrentTime": "2020-01-01T00:00:00Z"}),
    ("DateGreaterThan", {"aws:CurrentTime": "2099"}),
    ("DateLessThan", {"aws:CurrentTime": "2020-06"}),
    ("NotIpAddress", {"aws:SourceIp": ["198.51.100.0/24", "2001:db8::/32"]}),
    ("NotIpAddress", {"aws:SourceIp": "3.5.140.0/22"}),
    ("IpAddress", {"aws:SourceIp": "0.0.0.0/0"}),
    ("StringNotEquals", {"aws:PrincipalOrgID": "o-abcdefghij"}),
    ("StringNotLike", {"aws:userid": f"{BACKUP_ROLE_ID}:*"}),
    ("StringLike", {"aws:userid": f"{BACKUP_ROLE_ID}:*"}),
    ("StringNotEquals", {"aws:SourceVpce": "vpce-1a2b3c4d"}),
    ("StringNotEqualsIfExists", {"aws:SourceVpce": "vpce-1a2b3c4d"}),
    ("StringEquals", {"aws:PrincipalType": "AssumedRole"}),
    ("Bool", {"aws:ViaAWSService": "true"}),
    ("StringNotEquals", {"s3:ExistingObjectTag/class": "public"}),
)


_BACKUP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
_BACKUP_SESSION = (
    f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSBackupDefaultServiceRole/AWSBackup-AWSBackupDefaultServiceRole"
)
# Principal elements of a Deny: everyone, or NotPrincipal lists that do (all three names) or do not (role and
# account only, account only) spare AWS Backup's session (IAM User Guide, "NotPrincipal").
DENY_PRINCIPALS: tuple[tuple[str, Any], ...] = (
    ("Principal", "*"),
    ("Principal", "*"),
    ("Principal", {"AWS": _BACKUP_SESSION}),
    ("Principal", {"AWS": ACCOUNT}),
    ("NotPrincipal", {"AWS": [_BACKUP_ROLE, f"arn:aws:iam::{ACCOUNT}:root"]}),
    ("NotPrincipal", {"AWS": [_BACKUP_SESSION, _BACKUP_ROLE, f"arn:aws:iam::{ACCOUNT}:root"]}),
    ("NotPrincipal", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
)


def _subset(draw: st.DrawFn, pool: tuple[Any, ...], *, max_size: int) -> list[Any]:
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=max_size, unique=True))


@st.composite
def backup_deny_statements(draw: st.DrawFn, sid: str = "Foreign") -> JsonObj:
    """A foreign Deny with a Principal or NotPrincipal, Resource or NotResource patterns, an Action or NotAction set
    and 0-2 conditions."""
    element, principal = draw(st.sampled_from(DENY_PRINCIPALS))
    stmt: JsonObj = {"Sid": sid, "Effect": "Deny", element: principal}
    stmt["NotAction" if draw(st.booleans()) and draw(st.booleans()) else "Action"] = _subset(
        draw, DENY_ACTIONS, max_size=3
    )
    stmt["NotResource" if draw(st.integers(0, 3)) == 0 else "Resource"] = _subset(draw, DENY_RESOURCES, max_size=3)
    condition: JsonObj = {}
    for operator, keys in draw(st.lists(st.sampled_from(DENY_CONDITIONS), max_size=2, unique_by=lambda e: e[0])):
        condition.setdefault(operator, {}).update(keys)
    if condition:
        stmt["Condition"] = condition
    return stmt
