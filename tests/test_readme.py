"""The README's settings table lists every setting with its default."""

from __future__ import annotations

import re
from pathlib import Path

from streams.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(CARDIOWATCH_[A-Z_0-9]+)` \| ([^|]*) \|", README.read_text(), re.MULTILINE))
    for name, field in Settings.model_fields.items():
        variable = f"CARDIOWATCH_{name.upper()}"
        assert variable in rows, f"{variable} missing from the README settings table"
        default = "" if field.default is None else f"`{field.default}`"
        assert rows[variable].strip() == default, f"{variable}: README says {rows[variable]!r}, code {default!r}"
