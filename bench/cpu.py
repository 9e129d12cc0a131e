"""Which processor a run had, beside its ceiling.

The ceiling (bench/ceiling.py) scales the figures to the reference machine, but it does not
capture everything: on 2026-12-07 the same code needed about 30% more worker CPU per request than
on 2026-12-06 evening while the two ceilings differed by 4% (docs/performance.md, the seventeenth
round). A likely reason, not measured: a bare server's work fits in a core's first caches and
Provisor's does not, so the host's processor and caches matter to it more. The report names them,
so that two runs can be told apart.
"""

from __future__ import annotations

from pathlib import Path

#: The fields of /proc/cpuinfo's first processor that the report keeps.
FIELDS = ("model name", "cpu family", "model", "stepping", "cpu MHz")


def _cpuinfo(text: str) -> dict[str, str]:
    """The first processor's FIELDS (a block per processor, `key : value` lines)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if found:
                break
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        if key in FIELDS and key not in found:
            found[key] = value.strip()
    return found


def _caches(root: Path) -> dict[str, str]:
    """cpu0's data and unified caches by level (L1d, L2, L3), as sysfs gives their sizes."""
    caches: dict[str, str] = {}
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind in ("Data", "Unified"):
            caches[f"L{level}" + ("d" if kind == "Data" else "")] = size
    return caches


def describe(
    cpuinfo: Path = Path("/proc/cpuinfo"), caches: Path = Path("/sys/devices/system/cpu/cpu0/cache")
) -> dict[str, str]:
    """The processor's name, family/model/stepping, clock and caches; empty where unreadable."""
    try:
        info = _cpuinfo(cpuinfo.read_text())
    except OSError:
        info = {}
    return info | _caches(caches)


def line(info: dict[str, str]) -> str:
    """One sentence for the report, or "" when nothing was readable."""
    if not info:
        return ""
    name = info.get("model name", "unknown processor")
    ident = "/".join(info[k] for k in ("cpu family", "model", "stepping") if k in info)
    parts = [f"family/model/stepping {ident}"] if ident else []
    if "cpu MHz" in info:
        parts.append(f"{float(info['cpu MHz']):,.0f} MHz")
    parts += [f"{level} {info[level]}" for level in ("L1d", "L2", "L3") if level in info]
    return f"Processor: {name}" + (f" ({', '.join(parts)})" if parts else "") + "."
