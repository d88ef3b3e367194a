"""Argument-parsing helpers shared by cli.py and ``bucketwarden audit`` (audit/_cli.py)."""

from __future__ import annotations

import argparse


def add_repeatable(p: argparse.ArgumentParser, *flags: str, metavar: str, help: str) -> None:
    """A flag given once per value: its values as a list, empty when it is not given."""
    p.add_argument(*flags, action="append", default=[], metavar=metavar, help=help)
