"""A small folder laid out like shared/data (links to part of the real data), for training and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

MITDB = ("106", "119", "201", "208", "220", "104")
CINC_PER_CLASS = 25


@pytest.fixture(scope="session")
def small_data(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PTB-XL and the CPSC 2021 sample whole, 25 CinC 2017 records per class, six MIT-BIH records (one paced)."""
    root = tmp_path_factory.mktemp("small-data")
    (root / "ptbxl").symlink_to(data_dir / "ptbxl")
    (root / "cpsc2021_sample").symlink_to(data_dir / "cpsc2021_sample")
    mit = root / "mitdb"
    mit.mkdir()
    for rec in MITDB:
        for ext in ("hea", "dat", "atr"):
            (mit / f"{rec}.{ext}").symlink_to(data_dir / "mitdb" / f"{rec}.{ext}")
    (mit / "RECORDS").write_text("\n".join(MITDB) + "\n")
    cinc = root / "cinc2017"
    cinc.mkdir()
    lines = (data_dir / "cinc2017" / "REFERENCE.csv").read_text().splitlines()
    taken: dict[str, int] = {}
    keep = [lines[0]]
    for line in lines[1:]:
        record, label = line.split(",")
        if taken.get(label, 0) < CINC_PER_CLASS:
            taken[label] = taken.get(label, 0) + 1
            keep.append(line)
            for ext in ("mat", "hea"):
                (cinc / f"{record}.{ext}").symlink_to(data_dir / "cinc2017" / f"{record}.{ext}")
    (cinc / "REFERENCE.csv").write_text("\r\n".join(keep) + "\r\n")
    return root
