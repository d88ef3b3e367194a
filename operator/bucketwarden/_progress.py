"""Progress on stderr for long CLI runs, only when stderr is a terminal: pipes and CI logs stay quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


def wants_progress(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


@contextmanager
def progress_bar(stream: TextIO, *, total: int, label: str) -> Iterator[Callable[[], None]]:
    """Yield ``advance()``, to call once per finished item. A transient rich bar on a terminal, else nothing."""
    if not wants_progress(stream):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)
