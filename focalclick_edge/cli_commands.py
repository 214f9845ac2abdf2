"""Subcommands other than `variants`; each imports what it needs only when it runs."""
from __future__ import annotations

import argparse
from typing import Any


def add_subcommands(sub: Any, register: Any) -> None:
    """Filled in as the pipeline stages land (export, segment, eval, bench, train)."""
