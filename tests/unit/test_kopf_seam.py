"""kopf's private API is reached from one module, pinned, and checked at start-up (k8s/_kopf_private.py)."""

from __future__ import annotations

import asyncio
import configparser
import contextvars
import copy
import importlib.metadata
import logging
import re
import tomllib
from typing import Any, cast

import jsonpatch
import kopf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from bucketwarden.k8s import _kopf_private, build_registry
from bucketwarden.k8s._kopf_private import (
    KopfPrivateApiError,
    check_kopf_private_api,
    finalizer_ops,
    kopf_finalizer_edits,
    kopf_private_api_problems,
    patch_object,
)
from tests.shared import REPO_ROOT

SEAM = "operator/bucketwarden/k8s/_kopf_private.py"
# kopf's private subpackages (an underscore after "kopf."), spelled so that this file does not match itself.
PRIVATE_PACKAGES = {"kopf." + name for name in ("_cogs", "_core", "_kits")}
PRIVATE = re.compile(r"\bkopf\._[a-z]")  # not kopf.on, kopf.testing


def test_kopf_seam_is_the_only_module_that_mentions_kopfs_private_modules() -> None:
    folders = ("operator", "testkit", "tests", "bench", "tools")
    sources = [path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py")]
    mentioning = sorted(str(p.relative_to(REPO_ROOT)) for p in sources if PRIVATE.search(p.read_text(encoding="utf-8")))
    assert mentioning == [SEAM]


def test_kopf_seam_contract_forbids_kopfs_private_modules_outside_the_seam() -> None:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".importlinter")
    assert "kopf" in config["importlinter"]["root_packages"].split()  # else its submodules are not in the graph
    contract = config["importlinter:contract:kopf-seam"]
    assert contract["type"] == "forbidden"
    assert set(contract["source_modules"].split()) == {"bucketwarden", "bucketwarden_testkit"}
    assert set(contract["forbidden_modules"].split()) == PRIVATE_PACKAGES
    ignored = {line.split("->")[0].strip() for line in contract["ignore_imports"].splitlines() if "->" in line}
    assert ignored == {"bucketwarden.k8s._kopf_private"}


def test_kopf_seam_kopf_is_pinned_below_its_next_minor_and_installed_within_the_pin() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [kopf_requirement] = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "kopf"]
    assert str(kopf_requirement.specifier) == "<1.46,>=1.45.2"
    constraints = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8")
    [pinned] = re.findall(r"^kopf==(\S+)$", constraints, re.M)
    assert kopf_requirement.specifier.contains(pinned)
    assert kopf_requirement.specifier.contains(importlib.metadata.version("kopf"))


def test_kopf_seam_check_passes_on_the_pinned_kopf() -> None:
    assert kopf_private_api_problems() == []
    check_kopf_private_api()


async def _patch_obj_returning_a_body(
    *, settings: Any, resource: Any, namespace: Any, name: str, patch: Any, logger: Any
) -> dict[str, Any] | None:
    return {}


async def _patch_obj_without_logger(*, settings: Any, resource: Any, namespace: Any, name: str, patch: Any) -> Any:
    return None, None


def _sync_patch(url: str, *, settings: Any, payload: Any, headers: Any, logger: Any) -> Any:
    return None


@pytest.mark.parametrize(
    ("module", "attribute", "replacement", "problem"),
    [
        pytest.param(
            "_patching", "patch_obj", _patch_obj_returning_a_body, "patch_obj returns", id="patch-obj-returns-a-body"
        ),
        pytest.param(
            "_patching", "patch_obj", _patch_obj_without_logger, "lacks the parameters logger", id="patch-obj-signature"
        ),
        pytest.param("_api", "patch", _sync_patch, "api.patch is not a coroutine function", id="api-patch-sync"),
        pytest.param("_posting", "event_queue_var", None, "event_queue_var is not a ContextVar", id="no-queue-var"),
        pytest.param("_posting", "settings_var", object(), "settings_var is not a ContextVar", id="settings-var"),
        pytest.param("_finalizers", "block_deletion", None, "finalizers.block_deletion is missing", id="finalizers"),
    ],
)
def test_kopf_seam_check_fails_loudly_on_another_shape(
    monkeypatch: pytest.MonkeyPatch, module: str, attribute: str, replacement: object, problem: str
) -> None:
    monkeypatch.setattr(getattr(_kopf_private, module), attribute, replacement)
    with pytest.raises(KopfPrivateApiError, match=re.escape(problem)) as raised:
        check_kopf_private_api()
    assert f"kopf {importlib.metadata.version('kopf')} does not have the private API" in raised.value.message
    with pytest.raises(KopfPrivateApiError):  # the operator never starts on it
        build_registry()


def test_kopf_seam_patch_object_refuses_a_result_of_another_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    async def returns_a_body(**_: Any) -> dict[str, Any]:
        return {"metadata": {}}

    monkeypatch.setattr("bucketwarden.k8s._kopf_private._patching.patch_obj", returns_a_body)
    call = patch_object(
        settings=kopf.OperatorSettings(),
        resource=kopf.Resource("bucketwarden.io", "v1alpha1", "protectedbuckets"),
        namespace="ns",
        name="x",
        patch=kopf.Patch(),
        logger=logging.getLogger("test"),
    )
    with pytest.raises(KopfPrivateApiError, match="not a \\(body, patch\\) pair"):
        asyncio.run(call)


@pytest.mark.parametrize(
    ("patched", "expected"), [pytest.param({}, True, id="patched"), pytest.param(None, False, id="gone")]
)
def test_kopf_seam_patch_object_is_false_when_the_object_is_gone(
    monkeypatch: pytest.MonkeyPatch, patched: dict[str, Any] | None, expected: bool
) -> None:
    async def patch_obj(**_: Any) -> tuple[dict[str, Any] | None, None]:
        return patched, None

    monkeypatch.setattr("bucketwarden.k8s._kopf_private._patching.patch_obj", patch_obj)
    call = patch_object(
        settings=kopf.OperatorSettings(),
        resource=kopf.Resource("bucketwarden.io", "v1alpha1", "protectedbuckets"),
        namespace="ns",
        name="x",
        patch=kopf.Patch(),
        logger=logging.getLogger("test"),
    )
    assert asyncio.run(call) is expected


def test_kopf_seam_posting_context_carries_the_settings_into_a_fresh_context() -> None:
    settings = kopf.OperatorSettings()
    posting = _kopf_private.PostingContext(queue="q", loop=asyncio.new_event_loop(), settings=settings)
    try:
        captured = contextvars.Context().run(lambda: posting.run(_kopf_private.PostingContext.capture))
    finally:
        posting.loop.close()
    assert captured == posting


def test_kopf_seam_index_wait_wakes_the_waiters_once_not_once_per_object() -> None:
    """kopf's start-up wait (one toggle per indexed object, every handler waiting on the set) was quadratic: every
    make and drop woke every waiter. With linear_index_wait the waiters wake when the set turns on, once."""
    _kopf_private.linear_index_wait()
    toggle_set_type = _kopf_private.ToggleSet

    async def scenario(objects: int, waiters: int) -> tuple[int, int]:
        toggles = toggle_set_type(all)
        notified = 0
        original = toggles._condition.notify_all

        def counting() -> None:
            nonlocal notified
            notified += 1
            original()

        toggles._condition.notify_all = counting
        blocker = await toggles.make_toggle(name="blocker")
        woken = 0

        async def handler() -> None:
            nonlocal woken
            await toggles.wait_for(True)
            woken += 1

        tasks = [asyncio.create_task(handler()) for _ in range(waiters)]
        made = [await toggles.make_toggle(name=f"object {i}") for i in range(objects)]
        for toggle in made:
            await toggles.drop_toggle(toggle)
        await asyncio.sleep(0)
        assert woken == 0  # the blocker still holds them
        await toggles.drop_toggles([blocker])
        await asyncio.gather(*tasks)
        return notified, woken

    notified, woken = asyncio.run(scenario(objects=2000, waiters=200))
    assert woken == 200
    # The set's two changes of state (on -> off at the blocker, off -> on at its drop); kopf 1.45 as shipped
    # wakes all 200 waiters 4,002 times, once per make and drop.
    assert notified == 2


def test_kopf_seam_index_wait_still_wakes_waiters_for_the_off_state() -> None:
    _kopf_private.linear_index_wait()
    toggle_set_type = _kopf_private.ToggleSet

    async def scenario() -> bool:
        toggles = toggle_set_type(all)
        waiter = asyncio.create_task(toggles.wait_for(False))
        await asyncio.sleep(0)
        await toggles.make_toggle(name="object")  # on (empty) -> off
        await asyncio.wait_for(waiter, 1.0)
        return bool(toggles.is_off())

    assert asyncio.run(scenario())


FINALIZER_NAMES = st.sampled_from(["bucketwarden.io/finalizer", "other.io/keep", "x"])


@st.composite
def finalizer_patches(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any]]:
    meta: dict[str, Any] = {"name": "x", "namespace": "ns", "resourceVersion": "7"}
    if draw(st.booleans()):
        meta["finalizers"] = draw(st.lists(FINALIZER_NAMES, max_size=4))
    edits = [
        kopf_finalizer_edits(draw(FINALIZER_NAMES))[0 if draw(st.booleans()) else 1]
        for _ in range(draw(st.integers(1, 3)))
    ]
    return {"metadata": meta, "spec": {"bucketName": "b", "allowedSourceIps": ["10.0.0.0/8"]}}, edits


@settings(max_examples=400, deadline=None)
@given(finalizer_patches())
def test_kopf_seam_direct_finalizer_patch_leaves_the_object_as_kopfs_own_patch_does(
    case: tuple[dict[str, Any], list[Any]],
) -> None:
    build_registry()  # installs direct_finalizer_patches
    body, edits = case
    patch = kopf.Patch(fns=edits)
    kopfs = type(patch)._bucketwarden_kopf_as_json_patch  # type: ignore[attr-defined]
    direct, theirs = patch.as_json_patch(cast(Any, body)), kopfs(patch, body)
    assert direct == finalizer_ops(edits, body)  # the direct path was taken
    assert jsonpatch.apply_patch(body, direct) == jsonpatch.apply_patch(body, theirs)
    assert bool(direct) == bool(theirs)  # no request where kopf would send none, and the other way round


def test_kopf_seam_any_other_patch_is_still_kopfs() -> None:
    build_registry()
    body = {"metadata": {"name": "x", "finalizers": ["a"]}, "spec": {}}
    add, _ = kopf_finalizer_edits("bucketwarden.io/finalizer")

    def other(raw: Any) -> None:
        raw["metadata"].setdefault("labels", {})["k"] = "v"

    assert finalizer_ops([add, other], body) is None
    with_merge = kopf.Patch({"metadata": {"annotations": {"a": "b"}}}, fns=[add])
    for patch in (kopf.Patch(fns=[add, other]), with_merge):
        kopfs = type(patch)._bucketwarden_kopf_as_json_patch  # type: ignore[attr-defined]
        assert patch.as_json_patch(cast(Any, body)) == kopfs(patch, body)
    assert finalizer_ops([add], {"metadata": {"finalizers": "not-a-list"}}) is None
    assert finalizer_ops([add], body) == [
        {"op": "replace", "path": "/metadata/finalizers", "value": ["a", "bucketwarden.io/finalizer"]}
    ]


def test_kopf_seam_an_empty_patch_is_empty_without_a_copy_of_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    build_registry()
    patch = kopf.Patch()
    kopfs = type(patch)._bucketwarden_kopf_as_json_patch  # type: ignore[attr-defined]
    body = {"metadata": {"name": "x"}, "status": {"deep": [{"a": 1}]}}
    assert kopfs(patch, body) == []
    add, _ = kopf_finalizer_edits("bucketwarden.io/finalizer")

    def no_copy(*_: Any) -> Any:
        raise AssertionError("deep copy of the body")

    monkeypatch.setattr(copy, "deepcopy", no_copy)
    with pytest.raises(AssertionError):
        kopfs(patch, body)  # kopf's own copies the whole body first
    assert patch.as_json_patch(cast(Any, body)) == []
    assert kopf.Patch().as_json_patch() == []  # no body at all: kopf answers [] as well
    assert kopf.Patch(fns=[add]).as_json_patch(cast(Any, body)) != []  # the finalizer: no copy either
