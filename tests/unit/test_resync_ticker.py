"""The resync queue's tick: kopf's indexed body in, the timer-style resync, kopf's patch out; gone objects drop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
import pytest

from bucketwarden.k8s import _resync
from bucketwarden.k8s._fleet_index import CLAIMS, FLEET_INDEX, TARGETS, view
from bucketwarden.k8s._kopf_private import PostingContext
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._resync import QueueTicker, target_key
from bucketwarden.k8s._scheduler import ResyncQueue


def body(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "ProtectedBucket",
        "metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", **meta},
        "spec": {"bucketName": f"b-{name}"},
        "status": {"phase": "old"},
    }


EXECUTOR = ThreadPoolExecutor(1, thread_name_prefix="test-resync")


def ticker(bodies: Mapping[str, dict[str, Any]], resync: Any) -> QueueTicker:
    index: dict[tuple[str, str], Any] = {(TARGETS, target_key("ns", name)): [b] for name, b in bodies.items()}
    index[(CLAIMS, "b-x")] = [("t", "ns", "x")]
    t = QueueTicker(
        ResyncQueue(interval=60, jitter=0, concurrency=1),
        resync,
        EXECUTOR,
        kopf.OperatorSettings(),
        memo="the-memo",
        loop=cast(asyncio.AbstractEventLoop, None),
        metrics=Metrics(),
        indices={FLEET_INDEX: index, "tenant_policies": {"p": ["grant"]}},
    )
    t.posting = PostingContext(queue=None, loop=cast(asyncio.AbstractEventLoop, None))  # these resyncs post nothing
    t.resource = kopf.Resource("bucketwarden.io", "v1alpha1", "protectedbuckets")
    return t


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def fake_patch(**kwargs: Any) -> bool:
        calls.append(kwargs)
        return bool(kwargs["name"] != "vanished")

    monkeypatch.setattr(_resync, "patch_object", fake_patch)
    return calls


def test_a_tick_resyncs_from_the_indexed_body_and_applies_its_status_patch(patched: list[dict[str, Any]]) -> None:
    seen: list[Mapping[str, Any]] = []

    def resync(kwargs: Mapping[str, Any]) -> None:
        seen.append(kwargs)
        kwargs["patch"].status["phase"] = "new"

    t = ticker({"x": body("x")}, resync)
    assert asyncio.run(t(target_key("ns", "x"))) is True
    [kwargs] = seen
    assert kwargs["spec"] == {"bucketName": "b-x"} and kwargs["status"] == {"phase": "old"}
    assert (kwargs["namespace"], kwargs["name"], kwargs["memo"]) == ("ns", "x", "the-memo")
    assert kwargs["tenant_policies"] == {"p": ["grant"]}  # every kopf index, as a handler gets them
    assert dict(view(kwargs, CLAIMS)) == {"b-x": [("t", "ns", "x")]}
    [call] = patched
    assert (call["namespace"], call["name"]) == ("ns", "x")
    assert call["patch"]["status"] == {"phase": "new"}


def test_a_quiet_tick_patches_nothing(patched: list[dict[str, Any]]) -> None:
    t = ticker({"x": body("x")}, lambda kwargs: None)
    assert asyncio.run(t(target_key("ns", "x"))) is True
    assert patched == []


def test_an_object_gone_from_the_index_or_the_api_is_dropped(patched: list[dict[str, Any]]) -> None:
    def resync(kwargs: Mapping[str, Any]) -> None:
        kwargs["patch"].status["phase"] = "new"

    t = ticker({"vanished": body("vanished")}, resync)
    assert asyncio.run(t(target_key("ns", "never-indexed"))) is False
    assert asyncio.run(t(target_key("ns", "vanished"))) is False  # the patch found it gone (404)


def test_an_object_being_deleted_is_left_to_kopfs_delete_handler(patched: list[dict[str, Any]]) -> None:
    seen: list[object] = []
    t = ticker({"x": body("x", deletionTimestamp="2026-12-02T00:00:00Z")}, seen.append)
    assert asyncio.run(t(target_key("ns", "x"))) is True
    assert seen == [] and patched == []


def test_posting_context_outside_kopf_is_none_and_events_post_to_the_captured_queue() -> None:
    assert PostingContext.capture() is None

    async def main() -> list[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        posting = PostingContext(queue=queue, loop=asyncio.get_running_loop(), settings=kopf.OperatorSettings())
        obj = kopf.Body(cast(Any, body("x")))
        await asyncio.get_running_loop().run_in_executor(
            None, posting.context().run, lambda: kopf.event(obj, type="Normal", reason="R", message="m")
        )
        await asyncio.sleep(0.01)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    [event] = asyncio.run(main())
    assert (event.reason, event.ref["name"]) == ("R", "x")


def _missing_posting_count(t: QueueTicker, where: str) -> float:
    value = t.metrics.registry.get_sample_value("bucketwarden_posting_context_missing_total", {"where": where})
    return value or 0.0


def test_a_tick_without_kopfs_posting_context_is_skipped_logged_and_counted(
    patched: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []
    t = ticker({"x": body("x"), "y": body("y")}, seen.append)
    t.posting = None
    with caplog.at_level("DEBUG", logger="bucketwarden"):
        assert asyncio.run(t(target_key("ns", "x"))) is True
        assert asyncio.run(t(target_key("ns", "y"))) is True
    assert seen == [] and patched == []
    assert _missing_posting_count(t, "tick") == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "no kopf posting context for the resync of ns/x" in errors[0].getMessage()
    assert any("ns/y" in r.getMessage() for r in caplog.records if r.levelname == "DEBUG")


def test_observed_outside_kopfs_processing_counts_the_missing_context(caplog: pytest.LogCaptureFixture) -> None:
    t = ticker({}, lambda kwargs: None)
    t.posting = None
    with caplog.at_level("ERROR", logger="bucketwarden"):
        t.observed(kopf.Resource("bucketwarden.io", "v1alpha1", "protectedbuckets"))
    assert t.posting is None  # PostingContext.capture() outside a kopf handler
    assert _missing_posting_count(t, "capture") == 1
    assert "posting context is missing inside an index handler" in caplog.text


class _Steady:
    def get(self, key: str) -> object:
        return object() if key == target_key("ns", "x") else None


class _Memo:
    class runtime:  # noqa: N801 (kopf's memo holds the runtime under this name)
        steady = _Steady()


@pytest.mark.parametrize(
    ("api_has", "expected_status", "rereads"),
    [
        pytest.param({"observedGeneration": 3}, {"observedGeneration": 3}, 1, id="kopf-lags-the-api-has-it"),
        pytest.param(None, None, 1, id="gone-from-the-api"),
    ],
)
def test_a_tick_rereads_an_object_whose_indexed_copy_lags_behind_the_status_it_remembers(
    patched: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    api_has: dict[str, Any] | None,
    expected_status: dict[str, Any] | None,
    rereads: int,
) -> None:
    urls: list[str] = []

    async def fake_get(url: str, **_: Any) -> dict[str, Any]:
        urls.append(url)
        return {"items": [] if api_has is None else [{**body("x", generation=3), "status": api_has}]}

    monkeypatch.setattr(_resync, "get_json", fake_get)
    seen: list[Mapping[str, Any]] = []
    lagging = {**body("x", generation=3), "status": {"observedGeneration": 2}}  # this process wrote generation 3
    t = ticker({"x": lagging, "y": {**body("y", generation=3), "status": {}}}, seen.append)
    t.memo = _Memo()
    kept = asyncio.run(t(target_key("ns", "x")))
    asyncio.run(t(target_key("ns", "y")))  # nothing remembered for y: its copy is judged as it is
    assert urls == ["/apis/bucketwarden.io/v1alpha1/namespaces/ns/protectedbuckets?fieldSelector=metadata.name%3Dx"]
    assert t.metrics.registry.get_sample_value("bucketwarden_resync_rereads_total") == rereads
    if expected_status is None:
        assert kept is False and [s["name"] for s in seen] == ["y"]
    else:
        assert kept is True and seen[0]["status"] == expected_status
