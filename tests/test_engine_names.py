"""The engine never names a method: every file of bench/ except the paper's reference table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD_NAMES = re.compile(
    r"chexnet_cam|chexnet_ig|vagan|va-gan|pillet|stargan|fixedpoint|fixed-point|ref_supervised", re.IGNORECASE
)
ALLOWED = {Path("bench/report/paper.py")}  # the paper's figures, keyed by registry name


def engine_hits(root: Path) -> list[str]:
    """``path:line: text`` of every line of ``root/bench/**/*.py`` (but ALLOWED) naming a method."""
    hits = []
    for path in sorted((root / "bench").rglob("*.py")):
        rel = path.relative_to(root)
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if METHOD_NAMES.search(line):
                hits.append(f"{rel}:{number}: {line.strip()}")
    return hits


def test_engine_never_names_a_method() -> None:
    assert len(list((ROOT / "bench").rglob("*.py"))) > 20  # the scan sees the whole engine
    hits = engine_hits(ROOT)
    assert not hits, "the engine names methods:\n" + "\n".join(hits)


def test_the_scan_finds_names(tmp_path: Path) -> None:
    (tmp_path / "bench" / "sub").mkdir(parents=True)
    (tmp_path / "bench" / "sub" / "x.py").write_text("ok = 1\nif name == 'StarGAN':\n")
    (tmp_path / "bench" / "report").mkdir(parents=True, exist_ok=True)
    (tmp_path / "bench" / "report" / "paper.py").write_text("ACCURACY = {'vagan': 1}\n")
    assert engine_hits(tmp_path) == ["bench/sub/x.py:2: if name == 'StarGAN':"]
