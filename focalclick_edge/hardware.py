"""What machine a result came from, and what its CPU can do: the fingerprint stored with every
benchmark result (CPU, ISA flags, cores, library versions) and the flags the INT8 recipe depends on.

Latency numbers mean little without the machine they came from: INT8 speed depends on VNNI / AMX,
FP16/BF16 on AVX512_BF16 / AMX, and everything on the core count and library versions. The flags come
from /proc/cpuinfo (Linux); elsewhere they are reported as ``None`` (unknown), never as ``False``.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

# Reported name -> /proc/cpuinfo flags (any one present counts).
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "AVX2": ("avx2",),
    "AVX512F": ("avx512f",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX": ("amx_tile", "amx_int8", "amx_bf16"),
}
# Distribution names whose versions go into every result.
LIBRARIES = ("focalclick-edge", "numpy", "opencv-python-headless", "opencv-python", "onnxruntime",
             "openvino", "torch")


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per logical CPU; empty where it does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    cpus: list[dict[str, str]] = []
    for block in text.strip().split("\n\n"):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            cpus.append(entry)
    return cpus


def cpu_flags() -> set[str]:
    """The x86 feature flags of /proc/cpuinfo (what `lscpu` prints), empty where unavailable."""
    cpus = _cpuinfo()
    return set(cpus[0].get("flags", "").split()) if cpus else set()


def _physical_cores(cpus: list[dict[str, str]]) -> int | None:
    pairs = {(c.get("physical id"), c.get("core id")) for c in cpus if "core id" in c}
    return len(pairs) or None


def available_cpus() -> int:
    """Logical CPUs this process may run on (the affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_fingerprint(threads: int | None = None) -> dict[str, Any]:
    """The CPU and software a result was measured on; ``threads`` is the thread count the run used."""
    cpus = _cpuinfo()
    first = cpus[0] if cpus else {}
    flags = cpu_flags()
    known = bool(flags)
    isa = {name: (any(f in flags for f in names) if known else None) for name, names in ISA_FLAGS.items()}
    return {
        "model": first.get("model name") or platform.processor() or platform.machine(),
        "vendor": first.get("vendor_id"),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "available_cpus": available_cpus(),
        "physical_cores": _physical_cores(cpus),
        "threads_used": threads,
        "isa": isa,
        "amx_flags": sorted(f for f in flags if f.startswith("amx")),
        "isa_source": "/proc/cpuinfo" if known else "unavailable",
        "hypervisor": ("hypervisor" in flags) if known else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }


def isa_summary(fp: dict[str, Any]) -> str:
    """``AVX2 AVX512F AVX512_VNNI`` -- the flags that are present, for table headers."""
    isa = fp.get("isa", {})
    if all(v is None for v in isa.values()):
        return "ISA unknown"
    return " ".join(k for k, v in isa.items() if v) or "no AVX2"
