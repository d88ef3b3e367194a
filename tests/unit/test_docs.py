"""Every list a doc shares with the code is checked against the code: a change to one without the other fails here.

Ready reasons, Events, metrics, environment variables, CRD fields, exit codes, the RBAC grants, kopf's annotation
prefix, the CRD's size, and every repository path the docs name.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import bucketwarden.aws._errors as aws_errors
from bucketwarden import contention, errors, reconciler, sources, tenancy
from bucketwarden.crd import KOPF_STATUS
from bucketwarden.exitcodes import exit_code_table
from bucketwarden.k8s import _allowlists, _bookkeeping, _effective, _events, _handlers, _object
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.reasons import READY_REASONS, VERIFIED_INCONCLUSIVE
from bucketwarden.spec import ProtectedBucketSpec, ProtectedBucketStatus
from tests.shared import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
CRD_FILE = REPO_ROOT / "crds" / "bucketwarden.io_protectedbuckets.yaml"
CONDITION_TYPES = {reconciler.READY, reconciler.SYNCED, reconciler.VERIFIED}
TICKED = re.compile(r"`([^`]+)`")


def paragraph(text: str, start: str) -> str:
    """The paragraph of ``text`` that begins with ``start``."""
    begin = text.index(start)
    end = text.find("\n\n", begin)
    return text[begin : end if end >= 0 else len(text)]


def ticked(text: str) -> set[str]:
    return set(TICKED.findall(text))


def markdown_table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first Markdown table after ``heading``."""
    rows, started = [], False
    for line in text[text.index(heading) :].splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("|"):
            started = True
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


# --- what the code says ---------------------------------------------------------------------------------------


def _subclasses(cls: type[errors.BucketWardenError]) -> Iterator[type[errors.BucketWardenError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def code_ready_reasons() -> set[str]:
    """Every reason the code can give a Ready condition, found in the code itself (not in reasons.py)."""
    from_reconciler = {reconciler.R_PROTECTED, reconciler.R_OBSERVING, reconciler.R_INVALID_SPEC}
    from_reconciler |= {reconciler.R_VERIFICATION_FAILED, reconciler.R_ADOPTION_REFUSED}
    from_errors = {c.reason for c in _subclasses(errors.BucketWardenError) if c.__module__ == errors.__name__}
    from_aws = set(re.findall(r'reason="(\w+)"', inspect.getsource(aws_errors)))
    from_k8s = {tenancy.NOT_AUTHORIZED, _handlers.INVALID_SPEC, _events.CONFLICT}
    from_k8s |= {sources.SOURCE_LIST_NOT_FOUND, contention.CONTENDED}
    from_k8s |= {_effective.MANAGED_BY_ACK, _effective.ACK_BUCKET_NOT_FOUND, _effective.ACK_BUCKET_MISMATCH}
    from_k8s |= {_effective.ACK_PATCH_FAILED, _effective.ACK_PENDING}
    return from_reconciler | from_errors | from_aws | from_k8s


def code_event_reasons() -> set[str]:
    """Event reasons named in code: the constants of k8s/_events.py and the literals per-object handling posts."""
    named = {v for k, v in vars(_events).items() if k.isupper() and isinstance(v, str) and v not in CONDITION_TYPES}
    # Only what kopf.event() posts: log fields carry a reason= too ("Unchanged" for a quiet tick).
    posted = set(re.findall(r'kopf\.event\([^)]*?reason="(\w+)"', inspect.getsource(_object), re.S))
    posted.add(_allowlists.ALLOW_LIST_IN_USE)
    return named | posted


def code_metrics() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


# --- the tests ------------------------------------------------------------------------------------------------


def test_docs_readme_ready_reasons_match_the_code() -> None:
    documented = {word for word in ticked(paragraph(README, "Ready reasons:")) if word.isalpha()}
    assert documented == set(READY_REASONS) | {VERIFIED_INCONCLUSIVE}


def test_docs_reasons_table_holds_every_reason_the_code_can_set() -> None:
    assert code_ready_reasons() == set(READY_REASONS)


def test_docs_readme_events_match_the_code() -> None:
    assert ticked(paragraph(README, "Events:")) == code_event_reasons()


def test_docs_readme_metrics_match_the_code() -> None:
    listed = {name.split("{")[0] for name in ticked(paragraph(README, "Metrics:")) if name.startswith("bucketwarden_")}
    assert listed == code_metrics()


def test_docs_readme_environment_variables_match_the_settings() -> None:
    rows = markdown_table_after(README, "Environment variables")
    listed = {TICKED.findall(row[0])[0] for row in rows}
    expected = {
        f"{OperatorSettings.model_config.get('env_prefix', '')}{name}".upper() for name in OperatorSettings.model_fields
    }
    assert listed == expected


def test_docs_readme_crd_fields_match_the_spec_and_the_crd() -> None:
    rows = markdown_table_after(README, "## The ProtectedBucket resource")
    listed = [TICKED.findall(row[0])[0] for row in rows]
    spec_fields = [field.alias or name for name, field in ProtectedBucketSpec.model_fields.items()]
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    assert sorted(listed) == sorted(spec_fields) == sorted(schema["spec"]["properties"])
    status_fields = {field.alias or name for name, field in ProtectedBucketStatus.model_fields.items()}
    assert status_fields | {KOPF_STATUS} <= ticked(paragraph(README, "Status:"))
    assert status_fields | {KOPF_STATUS} == set(schema["status"]["properties"])


def test_docs_readme_exit_codes_are_the_generated_table() -> None:
    begin = README.index("<!-- exit-codes:begin")
    block = README[README.index("\n", begin) + 1 : README.index("<!-- exit-codes:end -->")]
    assert block.strip() == exit_code_table()


def test_docs_reliability_rbac_table_is_what_rbac_minimal_grants() -> None:
    rbac = yaml.safe_load((REPO_ROOT / "docs" / "rbac-minimal.yaml").read_text())
    granted = {
        (group, resource, verb)
        for mode in rbac.values()
        for rules in mode.values()
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    reliability = (REPO_ROOT / "docs" / "reliability.md").read_text()
    listed = set()
    for group_cell, resource_cell, verbs_cell in markdown_table_after(reliability, "grants exactly this"):
        group = TICKED.findall(group_cell)[0].strip('"')
        verbs = re.sub(r"\(.*?\)", "", verbs_cell).split(",")
        for resource in TICKED.findall(resource_cell):
            listed |= {(group, resource, verb.strip()) for verb in verbs}
    assert listed == granted


def test_docs_argocd_names_where_kopf_keeps_its_bookkeeping_and_its_finalizer() -> None:
    argocd = (REPO_ROOT / "docs" / "argocd.md").read_text()
    assert f"`{_bookkeeping.DIFFBASE_FIELD.rsplit('.', 1)[0]}`" in argocd
    assert f"`{_bookkeeping.LEGACY_DIFFBASE}`" in argocd
    assert f"`{_handlers.FINALIZER}`" in argocd
    assert "kopf.zalando.org" not in argocd  # kopf's default prefix, which the operator does not use
    assert "kopf.zalando.org" not in README


def test_docs_argocd_states_the_crds_real_size() -> None:
    argocd = (REPO_ROOT / "docs" / "argocd.md").read_text()
    text = CRD_FILE.read_text(encoding="utf-8")
    as_json = json.dumps(yaml.safe_load(text), separators=(",", ":"))
    stated = re.search(r"about (\d+) KiB of YAML, about (\d+) KiB as the compact JSON", argocd)
    assert stated is not None
    for claimed, actual in zip(stated.groups(), (len(text.encode()), len(as_json.encode())), strict=True):
        # Within 25 %: a new field need not touch the docs, a wrong order of magnitude must.
        assert abs(int(claimed) * 1024 - actual) <= 0.25 * actual, (claimed, actual)
    assert len(as_json.encode()) < 256 * 1024


def _named_paths(text: str) -> Iterator[str]:
    for match in re.finditer(r"(?<![\w./-])([\w.-]+(?:/[\w.-]+)*\.(?:py|md|yaml|yml|json|lua|txt|toml))\b", text):
        yield match.group(1)


NOT_IN_THE_REPOSITORY = {
    "bench/out/b1-bucketwarden-profile.txt",  # written by `make bench --profile`
    "resources/s3.py",  # Cloud Custodian's source
}


@pytest.mark.parametrize("doc", [REPO_ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_docs_every_repository_path_they_name_exists(doc: Path) -> None:
    bases = [
        REPO_ROOT,
        doc.parent,
        REPO_ROOT / "operator",
        REPO_ROOT / "operator" / "bucketwarden",
        REPO_ROOT / "examples" / "argocd",
    ]
    bases += [REPO_ROOT / "tests" / "reliability", REPO_ROOT / "docs"]
    missing = []
    for path in _named_paths(doc.read_text()):
        if path in NOT_IN_THE_REPOSITORY or path.startswith("..") or ("/" not in path and not path.endswith(".md")):
            continue  # a bare file name is an example (pb.yaml, out.json), unless it is a doc
        if not any((base / path).exists() for base in bases):
            missing.append(path)
    assert missing == []


@pytest.mark.parametrize("document", ["README.md", "docs/benchmarks.md"])
def test_docs_scale_claims_are_the_numbers_in_results_json(document: str) -> None:
    """The headline block of each document is what bench/results.json gives (python -m bench.headlines --write)."""
    from bench import headlines

    results = json.loads((REPO_ROOT / "bench" / "results.json").read_text())
    text = (REPO_ROOT / document).read_text()
    assert headlines.block_of(text) == headlines.render(results), f"run: python -m bench.headlines --write ({document})"


def test_docs_results_json_comes_from_one_build_with_every_benchmark() -> None:
    from bench.__main__ import BENCHMARKS

    results = json.loads((REPO_ROOT / "bench" / "results.json").read_text())
    build = results["machine"]["build"]
    assert build["commit"] and build["dirty"] is False
    assert set(BENCHMARKS) <= set(results)
    assert all(results[name].get("load_average_at_start") for name in BENCHMARKS)
