"""docs/reliability.md names the test proving each promise: every name it gives must exist."""

from __future__ import annotations

import re

from conftest import ROOT


def test_every_test_named_in_reliability_md_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::([\w:]+)`", text)
    assert len(named) > 20, "docs/reliability.md names too few tests"
    missing = []
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        *classes, function = name.split("::")
        found = re.search(rf"^\s*def {function}\(", source, re.M) and all(
            re.search(rf"^class {cls}\b", source, re.M) for cls in classes
        )
        if not found:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
