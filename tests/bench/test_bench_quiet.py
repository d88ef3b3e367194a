"""The benches wait for a quiet machine before a timed burst: the whole machine's busy cores, from /proc/stat."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bench._operator import wait_machine_quiet

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")


def test_a_busy_machine_is_waited_for_until_the_timeout_and_its_busy_cores_are_reported() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        began = time.monotonic()
        busy = wait_machine_quiet(window=0.2, busy_cores=0.05, timeout=0.5)
        waited = time.monotonic() - began
    finally:
        stop.set()
        spinner.join()
    assert busy >= 0.5  # the spinning thread alone keeps one core busy
    assert waited >= 0.5


def test_a_quiet_enough_machine_is_not_waited_for() -> None:
    cores = float(os.cpu_count() or 1)
    began = time.monotonic()
    busy = wait_machine_quiet(window=0.2, busy_cores=cores, timeout=30.0)  # every core busy still counts as quiet
    assert 0.0 <= busy <= cores
    assert time.monotonic() - began < 5.0
