"""bench/cpu.py names the run's processor from /proc/cpuinfo and sysfs, and says nothing it
could not read (a container without /sys, another architecture's cpuinfo)."""

from __future__ import annotations

from pathlib import Path

from bench.cpu import describe, line

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
stepping\t: 8
cpu MHz\t\t: 2699.998

processor\t: 1
model name\t: Another Processor
"""


def _cache(root: Path, index: int, level: int, kind: str, size: str) -> None:
    folder = root / f"index{index}"
    folder.mkdir(parents=True)
    (folder / "level").write_text(f"{level}\n")
    (folder / "type").write_text(f"{kind}\n")
    (folder / "size").write_text(f"{size}\n")


def test_the_first_processor_and_its_data_caches_are_named(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    caches = tmp_path / "cache"
    _cache(caches, 0, 1, "Data", "48K")
    _cache(caches, 1, 1, "Instruction", "32K")
    _cache(caches, 2, 2, "Unified", "2048K")
    _cache(caches, 3, 3, "Unified", "107520K")
    info = describe(tmp_path / "cpuinfo", caches)
    assert info["model name"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert "L1i" not in info
    assert line(info) == (
        "Processor: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (family/model/stepping 6/143/8, "
        "2,700 MHz, L1d 48K, L2 2048K, L3 107520K)."
    )


def test_what_cannot_be_read_is_left_out(tmp_path: Path) -> None:
    assert describe(tmp_path / "missing", tmp_path / "missing-cache") == {}
    assert line({}) == ""
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # an arm64 block
    assert line(describe(tmp_path / "cpuinfo", tmp_path / "none")) == ""
    (tmp_path / "cpuinfo").write_text("processor\t: 0\ncpu MHz\t: 2000.0\n")
    assert (
        line(describe(tmp_path / "cpuinfo", tmp_path / "none")) == "Processor: unknown processor (2,000 MHz)."
    )
