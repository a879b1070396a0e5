"""README stays true to the code: every setting documented, the two quick-start commands present."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"BUTLER_{name.upper()}" for name in Settings.model_fields if f"`BUTLER_{name.upper()}`" not in readme
    ]
    assert missing == []


def test_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./dev run" in readme and "./dev test" in readme
    assert (ROOT / "dev").stat().st_mode & 0o111
    assert "./dev test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
