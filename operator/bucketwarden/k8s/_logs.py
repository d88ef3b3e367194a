"""The operator's logs: INFO for start-up, changes and failures only; structured fields in JSON logs.

At 1,000 buckets and a 60 s resync, two INFO lines per tick were 2.9 million lines a day. A resync that finds
everything as it was now logs at DEBUG (ours and kopf's "Timer 'resync' succeeded."), and /healthz probes are
not logged at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from bucketwarden import __version__
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.reconciler import ReconcileResult

logger = logging.getLogger("bucketwarden")

# LogRecord reserves "name" (the logger's); the JSON formatter renames this extra to "name" on output.
OBJECT_NAME_FIELD = "object_name"
# kopf logs every handler success at INFO; for the resync timer that is one line per bucket per interval.
RESYNC_TIMER_SUCCESS = "Timer 'resync' succeeded."


class DemoteResyncSuccess(logging.Filter):
    """On kopf's per-object logger: the resync timer's success line becomes DEBUG (shown only at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg == RESYNC_TIMER_SUCCESS:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure_logging(settings: OperatorSettings) -> None:
    """kopf's handler and format, then our levels and field names on top."""
    fmt = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(verbose=settings.log_level == "DEBUG", log_format=fmt)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in root.handlers:
        renames = getattr(handler.formatter, "rename_fields", None)
        if isinstance(renames, dict):  # python-json-logger, under kopf's JSON formatter
            renames[OBJECT_NAME_FIELD] = "name"
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, DemoteResyncSuccess) for f in objects.filters):
        objects.addFilter(DemoteResyncSuccess())
    # Probes hit /healthz every few seconds and aiohttp logs each at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # botocore logs request details at DEBUG; keep it (and any credential material) out of the logs.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("boto3").setLevel(logging.WARNING)


def log_fields(
    *, bucket: str, namespace: str, name: str, outcome: str, reason: str, action: str, calls: int, duration: float
) -> dict[str, Any]:
    """The structured fields of a reconcile's log line."""
    return {
        "bucket": bucket,
        "namespace": namespace,
        OBJECT_NAME_FIELD: name,
        "outcome": outcome,
        "reason": reason,
        "action": action,
        "aws_calls": calls,
        "duration": round(duration, 4),
    }


def log_reconcile(result: ReconcileResult, namespace: str, name: str, *, level: int) -> None:
    if not logger.isEnabledFor(level):
        return
    ready = result.condition("Ready")
    reason = ready.reason if ready else "-"
    calls = sum(result.aws_calls.values())
    fields = log_fields(
        bucket=result.bucket,
        namespace=namespace,
        name=name,
        outcome=result.outcome,
        reason=reason,
        action=result.action,
        calls=calls,
        duration=result.duration_seconds,
    )
    logger.log(
        level,
        "reconciled %s/%s: bucket %s %s (%s), action %s, %d AWS calls",
        namespace,
        name,
        result.bucket,
        result.outcome,
        reason,
        result.action,
        calls,
        extra=fields,
    )


def startup_fields(
    settings: OperatorSettings, *, identity: str, region: str, namespaces: list[str] | None = None
) -> dict[str, Any]:
    """The start-up line's fields; ``non_default_settings`` lists every setting changed from its default."""
    return {
        "version": __version__,
        "aws_identity": identity,
        "aws_region": region,
        "namespaces": list(namespaces or settings.namespaces),
        "resync_interval_seconds": settings.resync_interval_seconds,
        "non_default_settings": settings.model_dump(mode="json", exclude_defaults=True),
    }


def log_startup(fields: Mapping[str, Any]) -> None:
    """One INFO line when the operator starts: what it is, as whom, where, and how it is configured."""
    logger.info(
        "bucketwarden %s started as %s in %s, watching %s, resync every %ss",
        fields["version"],
        fields["aws_identity"],
        fields["aws_region"],
        ",".join(fields["namespaces"]) or "all namespaces",
        fields["resync_interval_seconds"],
        extra=dict(fields),
    )
