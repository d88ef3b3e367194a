"""The document model: parse any bucket policy, reject invalid ones clearly, serialise stably, compare by meaning."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bucketwarden.errors import PolicyError, PolicyParseError
from bucketwarden.policy import MAX_POLICY_BYTES, POLICY_VERSION, PolicyDocument, Principal, Statement

BUCKET_ARN = "arn:aws:s3:::awsbackup-test-001"
OBJECTS_ARN = f"{BUCKET_ARN}/*"


def stmt(**fields: Any) -> dict[str, Any]:
    """A valid statement with defaults for the fields a test does not care about."""
    base: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": OBJECTS_ARN}
    for name, value in fields.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def doc(*statements: Any, **top: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", **top, "Statement": list(statements)}


def parse(obj: Any) -> PolicyDocument:
    return PolicyDocument.parse(json.dumps(obj))


# --- parsing valid policies -----------------------------------------------------------------------------------

VALID_STATEMENTS = [
    pytest.param(stmt(), id="no-sid"),
    pytest.param(stmt(Sid="AllowRead"), id="with-sid"),
    pytest.param(stmt(Action=["s3:GetObject", "s3:GetObjectVersion"], Resource=[BUCKET_ARN, OBJECTS_ARN]), id="lists"),
    pytest.param(stmt(Principal={"AWS": "arn:aws:iam::111122223333:root"}), id="principal-aws-string"),
    pytest.param(stmt(Principal={"AWS": ["111122223333", "arn:aws:iam::444455556666:root"]}), id="principal-aws-list"),
    pytest.param(stmt(Principal={"AWS": "*"}), id="principal-aws-star"),
    pytest.param(stmt(Principal={"Service": "cloudfront.amazonaws.com"}), id="principal-service"),
    pytest.param(stmt(Principal={"AWS": "AIDAJQABLZS4A3QDU576Q"}), id="principal-deleted-bare-unique-id"),
    pytest.param(stmt(Principal={"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8"}), id="canonical"),
    pytest.param(stmt(Principal={"Federated": "cognito-identity.amazonaws.com"}), id="principal-federated"),
    pytest.param(
        stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": "arn:aws:iam::111122223333:root"}), id="not-principal"
    ),
    pytest.param(stmt(Action=None, NotAction=["s3:GetObject", "s3:ListBucket"]), id="not-action"),
    pytest.param(stmt(Resource=None, NotResource=f"{BUCKET_ARN}/public/*"), id="not-resource"),
    pytest.param(stmt(Condition={"Bool": {"aws:SecureTransport": False}}), id="bool-value"),
    pytest.param(stmt(Condition={"NumericLessThan": {"s3:TlsVersion": 1.2}}), id="number-value"),
    pytest.param(stmt(Condition={"StringLike": {"s3:prefix": ["home/", "home/*"]}}), id="value-list"),
]

CONDITION_OPERATORS = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Null",
]


@pytest.mark.parametrize("statement", VALID_STATEMENTS)
def test_document_parse_accepts_valid_statement(statement: dict[str, Any]) -> None:
    policy = parse(doc(statement))
    assert len(policy.statements) == 1
    # A foreign statement is written back as it was read.
    assert policy.to_obj()["Statement"] == [statement]


@pytest.mark.parametrize(
    "operator",
    [
        *CONDITION_OPERATORS,
        *(f"{op}IfExists" for op in CONDITION_OPERATORS if op != "Null"),
        "ForAnyValue:StringLike",
        "ForAllValues:StringEquals",
    ],
)
def test_document_parse_accepts_every_condition_operator(operator: str) -> None:
    statement = stmt(Condition={operator: {"aws:SomeKey": ["a", "b"]}})
    policy = parse(doc(statement))
    assert policy.statements[0].conditions == {operator: {"aws:somekey": ("a", "b")}}
    assert policy.to_obj()["Statement"] == [statement]


def test_document_parse_reads_string_or_list_fields_as_tuples() -> None:
    one = Statement.parse(stmt(Action="s3:GetObject", Resource=OBJECTS_ARN))
    many = Statement.parse(stmt(Action=["s3:GetObject", "s3:PutObject"], Resource=[BUCKET_ARN, OBJECTS_ARN]))
    assert (one.actions, one.resources) == (("s3:GetObject",), (OBJECTS_ARN,))
    assert many.actions == ("s3:GetObject", "s3:PutObject")
    assert many.resources == (BUCKET_ARN, OBJECTS_ARN)
    assert one.not_actions is None
    assert one.not_resources is None


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        pytest.param("*", Principal(wildcard=True), id="star"),
        pytest.param({"AWS": "111122223333"}, Principal(False, {"AWS": ("111122223333",)}), id="aws-string"),
        pytest.param({"Service": ["a.amazonaws.com"]}, Principal(False, {"Service": ("a.amazonaws.com",)}), id="list"),
        pytest.param(
            {"AWS": "AROAEXAMPLEDELETED001"}, Principal(False, {"AWS": ("AROAEXAMPLEDELETED001",)}), id="deleted-role"
        ),
    ],
)
def test_document_parse_reads_principal(principal: Any, expected: Principal) -> None:
    assert Statement.parse(stmt(Principal=principal)).principal == expected


def test_document_parse_keeps_statement_naming_a_deleted_principal_untouched() -> None:
    # Fact 21: a deleted principal shows as its bare unique id; such a foreign statement is kept as it is.
    foreign = stmt(Sid="LegacyReader", Principal={"AWS": ["AIDAJQABLZS4A3QDU576Q", "arn:aws:iam::111122223333:root"]})
    policy = parse(doc(foreign))
    assert policy.statements[0].principal == Principal(
        False, {"AWS": ("AIDAJQABLZS4A3QDU576Q", "arn:aws:iam::111122223333:root")}
    )
    assert policy.to_obj()["Statement"] == [foreign]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(True, "true", id="bool-true"),
        pytest.param(False, "false", id="bool-false"),
        pytest.param(10, "10", id="int"),
        pytest.param(1.2, "1.2", id="float"),
        pytest.param("1.2", "1.2", id="string"),
        pytest.param([True, "x", 3], ("true", "x", "3"), id="mixed-list"),
    ],
)
def test_document_parse_reads_condition_values_as_text(value: Any, text: str | tuple[str, ...]) -> None:
    statement = Statement.parse(stmt(Condition={"Bool": {"aws:SecureTransport": value}}))
    expected = text if isinstance(text, tuple) else (text,)
    assert statement.conditions["Bool"]["aws:securetransport"] == expected


def test_document_parse_folds_condition_key_case_but_not_value_case() -> None:
    statement = Statement.parse(stmt(Condition={"StringNotLike": {"aws:userId": "AROASAMPLE:*"}}))
    assert statement.conditions == {"StringNotLike": {"aws:userid": ("AROASAMPLE:*",)}}


def test_document_parse_accepts_single_statement_object() -> None:
    policy = PolicyDocument.parse(json.dumps({"Version": "2012-10-17", "Statement": stmt(Sid="Only")}))
    assert [s.sid for s in policy.statements] == ["Only"]
    assert policy.to_obj()["Statement"] == [stmt(Sid="Only")]


@pytest.mark.parametrize(
    ("top", "version"),
    [
        pytest.param({"Version": "2012-10-17"}, "2012-10-17", id="2012"),
        pytest.param({"Version": "2008-10-17"}, "2008-10-17", id="2008"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_document_parse_records_version(top: dict[str, Any], version: str | None) -> None:
    assert PolicyDocument.parse(json.dumps({**top, "Statement": [stmt()]})).version == version


def test_document_parse_accepts_bytes_and_whitespace() -> None:
    text = json.dumps(doc(stmt()), indent=4).encode()
    assert PolicyDocument.parse(b"\n  " + text + b"\n").same_meaning(parse(doc(stmt())))


# --- rejecting invalid policies -------------------------------------------------------------------------------

INVALID = [
    pytest.param("{not json", "not valid JSON", id="invalid-json"),
    pytest.param("", "not valid JSON", id="empty-text"),
    pytest.param(b"\xff\xfe{", "not valid JSON", id="invalid-utf8"),
    pytest.param([stmt()], "must be a JSON object", id="top-level-list"),
    pytest.param({"Version": "2012-10-17"}, "needs a non-empty Statement list", id="no-statement"),
    pytest.param(doc(), "needs a non-empty Statement list", id="empty-statement-list"),
    pytest.param({"Statement": "x"}, "needs a non-empty Statement list", id="statement-string"),
    pytest.param({**doc(stmt()), "Statements": []}, "unknown top-level field(s) Statements", id="unknown-top-field"),
    pytest.param({"Version": "2020-01-01", "Statement": [stmt()]}, "Version must be", id="bad-version"),
    pytest.param(doc(stmt(), Id=7), "Id must be a string", id="id-not-string"),
    pytest.param(doc("Allow"), "Statement[0]: a statement must be a JSON object", id="statement-not-object"),
    pytest.param(doc(stmt(Effect=None)), 'Statement[0].Effect: must be "Allow" or "Deny", got None', id="no-effect"),
    pytest.param(doc(stmt(Effect="allow")), 'must be "Allow" or "Deny", got \'allow\'', id="effect-lowercase"),
    pytest.param(doc(stmt(Sid=5)), "Statement[0].Sid: must be a string", id="sid-not-string"),
    pytest.param(
        doc(stmt(Sid="S1", NotAction="s3:PutObject")),
        "Statement[0](S1): Action and NotAction are mutually exclusive",
        id="action-and-notaction",
    ),
    pytest.param(
        doc(stmt(), stmt(NotResource=BUCKET_ARN)),
        "Statement[1]: Resource and NotResource are mutually exclusive",
        id="resource-and-notresource",
    ),
    pytest.param(
        doc(stmt(Effect="Deny", NotPrincipal="*")),
        "Principal and NotPrincipal are mutually exclusive",
        id="principal-and-notprincipal",
    ),
    pytest.param(doc(stmt(Principal=None)), "needs Principal or NotPrincipal", id="no-principal"),
    pytest.param(doc(stmt(Action=None)), "Statement[0]: needs Action or NotAction", id="no-action"),
    pytest.param(doc(stmt(Resource=None)), "Statement[0]: needs Resource or NotResource", id="no-resource"),
    pytest.param(doc(stmt(Resource=[])), "Statement[0].Resource: expected a string or a non-empty list", id="empty"),
    pytest.param(doc(stmt(Action=["s3:GetObject", 3])), "Statement[0].Action: expected a string", id="action-int"),
    pytest.param(doc(stmt(Foo="bar", Bar=1)), "Statement[0]: unknown field(s) Bar, Foo", id="unknown-fields"),
    pytest.param(doc(stmt(Principal={"User": "x"})), "unknown principal type 'User'", id="unknown-principal-type"),
    pytest.param(doc(stmt(Principal="AWS")), 'Statement[0].Principal: expected "*" or an object', id="principal-str"),
    pytest.param(doc(stmt(Principal={})), 'Statement[0].Principal: expected "*" or an object', id="principal-empty"),
    pytest.param(doc(stmt(Condition=["x"])), "Statement[0].Condition: must be an object of operators", id="cond-list"),
    pytest.param(
        doc(stmt(Condition={"Bool": {}})), "Statement[0].Condition.Bool: must be a non-empty object", id="cond-empty"
    ),
    pytest.param(
        doc(stmt(Condition={"Bool": {"aws:SecureTransport": []}})),
        "Statement[0].Condition.Bool.aws:SecureTransport: empty list of values",
        id="cond-empty-values",
    ),
    pytest.param(
        doc(stmt(Condition={"Bool": {"aws:SecureTransport": None}})),
        "expected a string, number or boolean, got NoneType",
        id="cond-null-value",
    ),
    pytest.param(
        doc(stmt(Condition={"StringLike": {"s3:prefix": [{"a": 1}]}})),
        "Statement[0].Condition.StringLike.s3:prefix: expected a string, number or boolean, got dict",
        id="cond-object-value",
    ),
]


@pytest.mark.parametrize(("source", "message"), INVALID)
def test_document_parse_rejects_invalid_policy_with_clear_message(source: Any, message: str) -> None:
    text = source if isinstance(source, str | bytes) else json.dumps(source)
    with pytest.raises(PolicyParseError, match=re.escape(message)) as caught:
        PolicyDocument.parse(text)
    assert isinstance(caught.value, PolicyError)
    assert caught.value.reason == "MalformedPolicy"
    assert caught.value.__cause__ is None  # no json traceback chained onto a user-facing error


# --- serialising ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "top",
    [
        pytest.param({"Version": "2012-10-17"}, id="2012"),
        pytest.param({"Version": "2008-10-17"}, id="2008"),
        pytest.param({}, id="absent"),
    ],
)
def test_document_to_json_keeps_a_legacy_version(top: dict[str, Any]) -> None:
    # A 2008-10-17 document (no Version means the same) is never upgraded: ${...} would become a variable.
    policy = PolicyDocument.parse(json.dumps({**top, "Statement": [stmt()]}))
    written = json.loads(policy.to_json())
    expected = top.get("Version", "2008-10-17")
    assert written["Version"] == expected
    assert next(iter(written)) == "Version"
    assert policy.with_statements(policy.statements).version == expected
    assert PolicyDocument((policy.statements[0],)).to_obj()["Version"] == POLICY_VERSION  # a new document


def test_document_to_json_keeps_id() -> None:
    policy = parse(doc(stmt(), Id="S3PolicyId1"))
    assert policy.id == "S3PolicyId1"
    assert list(policy.to_obj()) == ["Version", "Id", "Statement"]
    assert json.loads(policy.to_json())["Id"] == "S3PolicyId1"
    assert policy.with_statements(()).id == "S3PolicyId1"


def test_document_to_json_without_id_has_no_id() -> None:
    assert "Id" not in json.loads(parse(doc(stmt())).to_json())


def test_document_to_json_is_compact_or_pretty() -> None:
    policy = parse(doc(stmt(Sid="A")))
    assert policy.to_json() == json.dumps(policy.to_obj(), separators=(",", ":"))
    assert " " not in policy.to_json()
    assert policy.to_json(pretty=True) == json.dumps(policy.to_obj(), indent=2)
    assert json.loads(policy.to_json(pretty=True)) == json.loads(policy.to_json())


def test_document_to_json_keeps_foreign_key_order() -> None:
    foreign = {"Resource": OBJECTS_ARN, "Action": "s3:GetObject", "Principal": "*", "Effect": "Allow", "Sid": "Odd"}
    written = parse(doc(foreign)).to_json()
    assert '{"Resource":' in written
    assert list(json.loads(written)["Statement"][0]) == list(foreign)


def test_document_to_json_keeps_non_ascii_text() -> None:
    policy = parse(doc(stmt(Condition={"StringEquals": {"s3:prefix": "bücher/"}})))
    assert "bücher/" in policy.to_json()


def test_statement_build_writes_our_key_order() -> None:
    ours = Statement.build(
        sid="Ours",
        effect="Deny",
        principal="*",
        action="s3:*",
        resource=[BUCKET_ARN, OBJECTS_ARN],
        condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
    )
    assert list(ours.to_json()) == ["Sid", "Effect", "Principal", "Action", "Resource", "Condition"]
    assert ours.sid == "Ours"
    assert ours.conditions == {"NotIpAddress": {"aws:sourceip": ("192.0.2.0/24",)}}


def test_statement_build_without_condition_or_sid() -> None:
    built = Statement.build(sid=None, effect="Allow", principal="*", action="s3:GetObject", resource=OBJECTS_ARN)
    assert built.to_json() == {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": OBJECTS_ARN}


def test_statement_to_json_returns_a_copy() -> None:
    statement = Statement.parse(stmt(Action=["s3:GetObject"]))
    statement.to_json()["Action"].append("s3:PutObject")
    assert statement.to_json()["Action"] == ["s3:GetObject"]


@pytest.mark.parametrize("n_statements", [1, 10, 60])
def test_document_size_bytes_is_the_compact_utf8_length(n_statements: int) -> None:
    policy = parse(
        doc(*(stmt(Sid=f"S{i}", Condition={"StringEquals": {"s3:prefix": "é"}}) for i in range(n_statements)))
    )
    assert policy.size_bytes == len(policy.to_json().encode("utf-8"))
    assert policy.size_bytes > len(policy.to_json())  # "é" is two bytes in UTF-8
    assert policy.size_bytes < len(policy.to_json(pretty=True).encode())


def test_document_size_bytes_can_exceed_the_s3_limit() -> None:
    assert MAX_POLICY_BYTES == 20 * 1024
    big = parse(doc(*(stmt(Sid=f"S{i}", Resource=f"{BUCKET_ARN}/{'x' * 100}/{i}") for i in range(150))))
    assert big.size_bytes > MAX_POLICY_BYTES


# --- comparing by meaning -------------------------------------------------------------------------------------

DENY: dict[str, Any] = {
    "Sid": "Deny",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [BUCKET_ARN, OBJECTS_ARN],
    "Condition": {
        "StringNotLike": {"aws:userId": "AROASAMPLESAMPLESAMPL:*"},
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
    },
}
READ: dict[str, Any] = {
    "Sid": "Read",
    "Effect": "Allow",
    "Principal": {"AWS": ["111122223333", "444455556666"]},
    "Action": "s3:Get*",
    "Resource": OBJECTS_ARN,
}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with fields replaced; None removes a field."""
    out: dict[str, Any] = json.loads(json.dumps(base))
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


SAME_MEANING = [
    pytest.param(doc(DENY, READ), doc(READ, DENY), id="statement-order"),
    pytest.param(
        doc(DENY),
        doc(with_changes(DENY, Resource=[OBJECTS_ARN, BUCKET_ARN])),
        id="value-order",
    ),
    pytest.param(doc(READ), doc(with_changes(READ, Resource=[OBJECTS_ARN], Action=["s3:Get*"])), id="x-vs-list-of-x"),
    pytest.param(doc(DENY), doc(with_changes(DENY, Action="S3:*")), id="action-case"),
    pytest.param(doc(READ), doc(with_changes(READ, Action="s3:get*")), id="action-case-lower"),
    pytest.param(
        doc(DENY),
        doc(
            with_changes(
                DENY,
                Condition={
                    "NotIpAddress": {"AWS:SOURCEIP": ["203.0.113.0/24", "192.0.2.0/24"]},
                    "StringNotLike": {"aws:userid": ["AROASAMPLESAMPLESAMPL:*"]},
                },
            )
        ),
        id="condition-key-case-and-order",
    ),
    pytest.param(
        doc(READ), doc(with_changes(READ, Principal={"AWS": ["444455556666", "111122223333"]})), id="principal-order"
    ),
    pytest.param(doc(READ), doc(with_changes(READ, Resource=[OBJECTS_ARN, OBJECTS_ARN])), id="duplicate-values"),
    pytest.param(
        doc(stmt(Condition={"Bool": {"aws:SecureTransport": False}})),
        doc(stmt(Condition={"Bool": {"aws:SecureTransport": "false"}})),
        id="bool-vs-string",
    ),
    pytest.param(doc(DENY), {"Statement": DENY, "Version": "2012-10-17"}, id="single-object-vs-list"),
    pytest.param(doc(DENY), doc({k: DENY[k] for k in reversed(list(DENY))}), id="key-order"),
]

DIFFERENT_MEANING = [
    pytest.param(
        doc(DENY),
        doc(with_changes(DENY, Condition={**DENY["Condition"], "StringNotLike": {"aws:userId": "aroasamplesample:*"}})),
        id="condition-value-case",
    ),
    pytest.param(doc(DENY), doc(with_changes(DENY, Resource=[BUCKET_ARN.upper(), OBJECTS_ARN])), id="resource-case"),
    pytest.param(doc(DENY), doc(with_changes(DENY, Effect="Allow")), id="effect"),
    pytest.param(doc(DENY), doc(with_changes(DENY, Sid="Other")), id="sid"),
    pytest.param(doc(DENY), doc(DENY, READ), id="extra-statement"),
    pytest.param(doc(DENY), doc(DENY, DENY), id="duplicated-statement"),
    pytest.param(
        doc(DENY),
        doc(
            with_changes(
                DENY,
                Condition={
                    **DENY["Condition"],
                    "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24", "198.51.100.0/24"]},
                },
            )
        ),
        id="extra-cidr",
    ),
    pytest.param(
        doc(DENY),
        doc(with_changes(DENY, Condition={"NotIpAddress": DENY["Condition"]["NotIpAddress"]})),
        id="missing-exemption",
    ),
    pytest.param(
        doc(DENY),
        doc(
            with_changes(
                DENY,
                Condition={
                    "StringNotLikeIfExists": DENY["Condition"]["StringNotLike"],
                    "NotIpAddress": DENY["Condition"]["NotIpAddress"],
                },
            )
        ),
        id="ifexists",
    ),
    pytest.param(
        doc(DENY),
        doc(
            with_changes(
                DENY,
                Condition={
                    "StringLike": DENY["Condition"]["StringNotLike"],
                    "NotIpAddress": DENY["Condition"]["NotIpAddress"],
                },
            )
        ),
        id="operator",
    ),
    pytest.param(
        doc(stmt(Condition={"StringEquals": {"aws:SourceVpc": "vpc-1", "aws:SourceVpce": "vpce-1"}})),
        doc(stmt(Condition={"StringEquals": {"aws:SourceVpc": ["vpc-1", "vpce-1"]}})),
        id="value-moved-between-keys",
    ),
    pytest.param(doc(READ), doc(with_changes(READ, NotAction=READ["Action"], Action=None)), id="action-vs-notaction"),
    pytest.param(
        doc(stmt(Effect="Deny", Principal={"AWS": "111122223333"})),
        doc(stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": "111122223333"})),
        id="principal-vs-notprincipal",
    ),
    pytest.param(
        doc(READ), doc(with_changes(READ, Principal={"Service": ["444455556666", "111122223333"]})), id="type"
    ),
    pytest.param(doc(READ), doc(READ, Id="Other"), id="id"),
    pytest.param(doc(READ), {"Version": "2008-10-17", "Statement": [READ]}, id="version"),
]


@pytest.mark.parametrize(("left", "right"), SAME_MEANING)
def test_document_same_meaning_ignores_form(left: dict[str, Any], right: dict[str, Any]) -> None:
    a, b = parse(left), parse(right)
    assert json.dumps(left) != json.dumps(right)  # the texts differ...
    assert a.same_meaning(b)  # ...the meaning does not
    assert b.same_meaning(a)
    assert a == b
    assert hash(a) == hash(b)
    assert a.policy_hash == b.policy_hash
    assert len({a, b}) == 1


@pytest.mark.parametrize(("left", "right"), DIFFERENT_MEANING)
def test_document_same_meaning_sees_real_differences(left: dict[str, Any], right: dict[str, Any]) -> None:
    a, b = parse(left), parse(right)
    assert not a.same_meaning(b)
    assert not b.same_meaning(a)
    assert a != b
    assert a.policy_hash != b.policy_hash


def test_document_policy_hash_format() -> None:
    policy_hash = parse(doc(DENY)).policy_hash
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", policy_hash)


def test_document_equality_with_other_types_is_false() -> None:
    policy = parse(doc(DENY))
    assert policy != policy.to_json()
    assert policy.statements[0] != DENY


def test_statement_same_meaning_ignores_form() -> None:
    a = Statement.parse(DENY)
    b = Statement.parse(
        with_changes(DENY, Action=["S3:*"], Resource=[OBJECTS_ARN, BUCKET_ARN], Condition=DENY["Condition"])
    )
    assert a.same_meaning(b)
    assert a == b
    assert hash(a) == hash(b)


# --- Sids -------------------------------------------------------------------------------------------------------


def test_document_sids_lists_sids_in_order_without_sidless_statements() -> None:
    policy = parse(doc(stmt(Sid="B"), stmt(), stmt(Sid="A"), stmt(Sid="B")))
    assert policy.sids == ["B", "A", "B"]
    assert policy.duplicate_sids() == ["B"]
    assert [s.raw for s in policy.find("B")] == [stmt(Sid="B"), stmt(Sid="B")]
    assert policy.find("missing") == []


def test_document_duplicate_sids_empty_when_unique() -> None:
    assert parse(doc(stmt(Sid="A"), stmt(), stmt())).duplicate_sids() == []
