"""Settings are declared once (config.py) and parsed one way; README.md's table matches them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provisor.cli.serve import serve
from provisor.config import ConfigError, Settings, parse_bool

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("text", ["true", "TRUE", "1", "yes", "On", " on "])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "OFF", "off"])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "2", "enabled", "nope", "tru"])
def test_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(text)


@pytest.mark.parametrize("name", ["PROVISOR_WEBHOOKS_ENABLED", "PROVISOR_TOKEN_CACHE"])
def test_every_boolean_variable_reads_off_as_false(name: str) -> None:
    field = next(f.name for f in Settings.declared() if f.metadata["env"] == name)
    assert getattr(Settings.from_env({name: "off"}), field) is False
    assert getattr(Settings.from_env({name: "On"}), field) is True
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: "sometimes"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROVISOR_MAX_PAGE_SIZE", "many"),
        ("PROVISOR_MAX_PAGE_SIZE", "0"),
        ("PROVISOR_REQUEST_TIMEOUT", "soon"),
        ("PROVISOR_REQUEST_LOG", "everything"),
        ("PROVISOR_LOG_LEVEL", "verbose"),
        ("PROVISOR_EVENT_RETENTION_DAYS", "-1"),
    ],
)
def test_bad_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_unset_and_empty_mean_the_default_and_overrides_win() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"PROVISOR_MAX_PAGE_SIZE": ""}).max_page_size == Settings().max_page_size
    settings = Settings.from_env({"PROVISOR_MAX_PAGE_SIZE": "50"}, max_page_size=70, base_url=None)
    assert settings.max_page_size == 70 and settings.base_url is None
    assert Settings.from_env({"PROVISOR_REQUEST_LOG": "FULL"}).request_log_mode == "full"


def test_settings_survive_pickling_for_spawned_workers() -> None:
    import pickle

    settings = Settings.from_env({"PROVISOR_WEBHOOKS_ENABLED": "no", "PROVISOR_TOKEN": "s"})
    assert pickle.loads(pickle.dumps(settings)) == settings


def _readme_rows() -> dict[str, str]:
    """`PROVISOR_X` -> its row, from README.md's configuration table."""
    text = README.read_text("utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `PROVISOR_"):
            for name in re.findall(r"`(PROVISOR_[A-Z_]+)`", line.split("|")[1]):
                rows[name] = line
    return rows


def test_readme_table_matches_the_declared_settings() -> None:
    rows = _readme_rows()
    serve_only = {p.envvar for p in serve.params if isinstance(p.envvar, str)}
    declared = {f.metadata["env"]: f for f in Settings.declared()}
    assert set(declared) - set(rows) == set(), "settings missing from README.md's table"
    assert set(rows) - set(declared) - serve_only == set(), "README.md documents unknown variables"
    for name, field in declared.items():
        default = field.default
        if default in (None, ()):
            continue
        shown = str(default).lower() if isinstance(default, bool) else f"{default}"
        default_cell = rows[name].split("|")[3]
        assert f"`{shown}`" in default_cell, (name, shown, default_cell)
