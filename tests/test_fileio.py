"""Atomic writes: all or nothing, with the permissions a plain open() would give."""
from __future__ import annotations

import os
import stat

import pytest

from focalclick_edge.fileio import atomic_file, write_json_atomic


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_atomic_file_gets_the_usual_permissions_not_mkstemps_0600(tmp_path):
    target = tmp_path / "card.json"
    write_json_atomic(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    assert target.read_text().strip().startswith("{")


def test_atomic_file_leaves_neither_target_nor_temporary_on_failure(tmp_path):
    target = tmp_path / "mask.png"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
