"""What the export machine's CPU can do with int8, read once at export time (lscpu's flag list)."""
from __future__ import annotations

import platform
from typing import Any

from ..hardware import cpu_flags

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_capabilities() -> dict[str, Any]:
    """VNNI / AVX-512 / AVX2 presence and the resulting ONNX Runtime ``reduce_range`` choice.

    Why it matters: x86 int8 GEMM without VNNI multiplies u8 x s8 pairs with VPMADDUBSW, whose 16-bit
    intermediate sums can saturate when weights use the full 8 bits; 7-bit weights (reduce_range) avoid
    that at a small accuracy cost. VNNI (VPDPBUSD) and ARM dot-product instructions accumulate in
    32 bits and do not saturate, so there the full range is kept."""
    machine = platform.machine().lower()
    flags = cpu_flags()
    is_x86 = machine in ("x86_64", "amd64", "i386", "i686")
    vnni = sorted(f for f in VNNI_FLAGS if f in flags)
    caps: dict[str, Any] = {
        "machine": machine,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "vnni": vnni,
    }
    if not is_x86:
        caps["reduce_range"] = False
        caps["reduce_range_reason"] = f"{machine or 'unknown'} CPU: no u8s8 saturation issue (not x86)"
    elif vnni:
        caps["reduce_range"] = False
        caps["reduce_range_reason"] = f"export CPU has {', '.join(vnni)}: int8 dot products do not saturate"
    else:
        caps["reduce_range"] = True
        caps["reduce_range_reason"] = ("export CPU has no VNNI: 7-bit weights avoid VPMADDUBSW saturation "
                                       "(u8 x s8 pairs summed in 16 bits)")
    return caps
