"""What the CPU at hand can do fast: bf16 matrix products (AVX512-BF16 or AMX).

Without one of them torch still runs bf16 on CPU, but emulated and slower than fp32, so the kit
offers bf16 on CPU only where the instructions are there (read from ``/proc/cpuinfo``'s flags;
``MEDSYN_CPU_BF16=0``/``1`` overrides the detection, e.g. to compare or on a non-Linux system).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_description() -> dict[str, str | int | list[str]]:
    """The CPU's model name, logical cores and its bf16/VNNI/AMX flags (for records and READMEs)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = [f for f in (*BF16_FLAGS, "avx512_vnni", "amx_int8", "amx_tile", "avx512f") if f in flags]
    return {"model": name, "cores": os.cpu_count() or 1, "flags": wanted}


def cpu_bf16_supported() -> bool:
    """True when the CPU has native bf16 matrix products (AVX512-BF16 or AMX-BF16)."""
    forced = os.environ.get("MEDSYN_CPU_BF16", "").strip().lower()
    if forced in {"0", "1", "true", "false", "yes", "no"}:
        return forced in {"1", "true", "yes"}
    return any(flag in cpu_description()["flags"] for flag in BF16_FLAGS)


def bf16_unsupported_message(what: str) -> str:
    """The one line a user reads when bf16 is asked for on a CPU without it."""
    return (f"{what}: bf16 on CPU needs AVX512-BF16 or AMX, which this CPU "
            f"({cpu_description()['model']}) lacks: use fp32 here (or a CUDA GPU)")
