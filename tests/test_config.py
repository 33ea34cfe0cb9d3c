"""Tests of flux2_cli.config: precedence, profiles, validation, redaction and safe writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flux2_cli import config
from flux2_cli.build import FLAG, Layer, build_request, config_layers
from flux2_cli.config import (
    DEFAULTS,
    get_value,
    list_values,
    load_config,
    normalise_api_key,
    resolve_settings,
    save_config,
    set_value,
    unset_value,
    validate_value,
)
from flux2_cli.errors import ConfigError, UsageError
from flux2_cli.providers import REGISTRY, get_provider
from flux2_cli.redact import mask
from flux2_cli.request import GenerationRequest

SENTINEL = "sk-SENTINEL-9f8e7d6c5b4a-wxyz"
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
ENV_VARS = (
    "FLUX2_API_KEY",
    "FLUX2_PROVIDER",
    "FLUX2_BASE_URL",
    "FLUX2_PROFILE",
    "APIINONE_API_KEY",
    "BFL_API_KEY",
)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config path under tmp_path named by FLUX2_CONFIG; key variables cleared."""
    path = tmp_path / "flux2" / "config.toml"
    monkeypatch.setenv("FLUX2_CONFIG", str(path))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # A registered bfl lets the tests exercise BFL_API_KEY; nothing imports the module.
    monkeypatch.setitem(REGISTRY, "bfl", "flux2_cli.providers.bfl:BflProvider")
    return path


def write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)


def resolve(
    path: Path, env: dict[str, str] | None = None, **cli: object
) -> tuple[config.Settings, list[str]]:
    return resolve_settings(cli, env=env or {}, path=path)


def asked(settings: config.Settings, **flags: object) -> GenerationRequest:
    """The request the builder makes from ``flags`` over the config's request options."""
    layers = [Layer(FLAG, {"prompt": "a red fox", **flags}), *config_layers(settings)]
    return build_request(get_provider("bfl"), layers).request


# --- precedence ----------------------------------------------------------------------------


def test_defaults_without_a_file(cfg: Path) -> None:
    settings, warnings = resolve(cfg)
    assert warnings == []
    assert settings.provider == DEFAULTS["provider"] == "apiinone"
    request = asked(settings)
    assert (request.mode, request.ratio, request.res) == ("pro", "1:1", "1K")
    assert settings.request_defaults == ()
    assert (settings.timeout, settings.poll_interval, settings.concurrency) == (600.0, 1.0, 4)
    assert (settings.name, settings.output_dir) == ("{slug}-{id8}", ".")
    assert settings.api_key is None and settings.api_key_source is None
    assert settings.profile is None
    assert settings.config_path == cfg
    assert not cfg.exists()


LAYERED = """
ratio = "4:3"
res = "2K"
mode = "flex"
concurrency = 8
profile = "work"

[profiles.work]
ratio = "3:2"
timeout = 30
"""


def test_cli_beats_profile_beats_top_level_beats_defaults(cfg: Path) -> None:
    write(cfg, LAYERED)
    settings, _ = resolve(cfg)
    assert asked(settings, ratio="16:9").ratio == "16:9"  # command line
    assert settings.timeout == 30.0  # profile
    assert asked(settings).res == "2K" and settings.concurrency == 8  # top level
    assert settings.poll_interval == 1.0  # default
    assert asked(settings).ratio == "3:2"  # profile over top level
    assert asked(settings).mode == "flex"


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ({"provider": "sandbox"}, {"FLUX2_PROVIDER": "bfl"}, "sandbox"),
        ({}, {"FLUX2_PROVIDER": "sandbox"}, "sandbox"),
        ({}, {}, "bfl"),  # the profile
        ({"profile": "none"}, {}, "apiinone"),  # the top level
    ],
)
def test_provider_precedence(
    cfg: Path, cli: dict[str, str], env: dict[str, str], expected: str
) -> None:
    write(
        cfg,
        'provider = "apiinone"\nprofile = "b"\n[profiles.b]\nprovider = "bfl"\n[profiles.none]\n',
    )
    settings, _ = resolve_settings(cli, env=env, path=cfg)
    assert settings.provider == expected


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        ({"base_url": "https://cli.example"}, {"FLUX2_BASE_URL": "https://env.example"}, "cli"),
        ({}, {"FLUX2_BASE_URL": "https://env.example"}, "env"),
        ({}, {}, "profile"),
        ({"profile": "empty"}, {}, "top"),
    ],
)
def test_base_url_precedence(
    cfg: Path, cli: dict[str, str], env: dict[str, str], expected: str
) -> None:
    write(
        cfg,
        'base_url = "https://top.example"\nprofile = "p"\n'
        '[profiles.p]\nbase_url = "https://profile.example"\n[profiles.empty]\n',
    )
    settings, _ = resolve_settings(cli, env=env, path=cfg)
    assert settings.base_url == f"https://{expected}.example"


def test_api_key_lookup_order(cfg: Path) -> None:
    write(cfg, 'provider = "bfl"\napi_key = "file-key-000000"\n')
    everything = {"FLUX2_API_KEY": "flux2-env-key", "BFL_API_KEY": "bfl-env-key"}
    settings, _ = resolve(cfg, everything, api_key="cli-key-00000")
    assert (settings.api_key, settings.api_key_source) == ("cli-key-00000", "--api-key")
    settings, _ = resolve(cfg, everything)
    assert (settings.api_key, settings.api_key_source) == ("flux2-env-key", "FLUX2_API_KEY")
    settings, _ = resolve(cfg, {"BFL_API_KEY": "bfl-env-key"})
    assert (settings.api_key, settings.api_key_source) == ("bfl-env-key", "BFL_API_KEY")
    settings, _ = resolve(cfg)
    assert settings.api_key == "file-key-000000"
    assert settings.api_key_source == f"config file {cfg}"


def test_provider_variable_follows_the_resolved_provider(cfg: Path) -> None:
    env = {"APIINONE_API_KEY": "apiinone-key", "BFL_API_KEY": "bfl-key"}
    settings, _ = resolve(cfg, env)
    assert settings.api_key == "apiinone-key"
    settings, _ = resolve(cfg, env, provider="bfl")
    assert (settings.api_key, settings.api_key_source) == ("bfl-key", "BFL_API_KEY")
    settings, _ = resolve(cfg, {"APIINONE_API_KEY": "apiinone-key"}, provider="bfl")
    assert settings.api_key is None


def test_env_key_wins_over_config_and_leaves_the_file_alone(cfg: Path) -> None:
    write(cfg, 'api_key = "file-key-000000"\n')
    before = cfg.read_bytes()
    settings, _ = resolve(cfg, {"FLUX2_API_KEY": "env-key-11111"})
    assert settings.api_key == "env-key-11111"
    assert cfg.read_bytes() == before


def test_profile_key_source_names_file_and_profile(cfg: Path) -> None:
    write(cfg, '[profiles.work]\napi_key = "work-key-1234"\n')
    settings, _ = resolve(cfg, profile="work")
    assert settings.api_key == "work-key-1234"
    assert settings.api_key_source == f"config file {cfg} (profile work)"


def test_env_key_with_trailing_newline_is_stripped(cfg: Path) -> None:
    settings, _ = resolve(cfg, {"FLUX2_API_KEY": "  env-key-11111\n"})
    assert settings.api_key == "env-key-11111"


def test_empty_env_variables_count_as_unset(cfg: Path) -> None:
    write(cfg, 'api_key = "file-key-000000"\n')
    settings, _ = resolve(cfg, {"FLUX2_API_KEY": "", "FLUX2_PROVIDER": " ", "FLUX2_PROFILE": ""})
    assert settings.api_key == "file-key-000000"
    assert settings.provider == "apiinone"


def test_flux2_config_names_the_file(tmp_path: Path, cfg: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    write(other, 'ratio = "9:16"\n')
    settings, _ = resolve_settings({}, env={"FLUX2_CONFIG": str(other)})
    assert asked(settings).ratio == "9:16"
    assert settings.config_path == other
    assert config.load_config() == {}  # the fixture's FLUX2_CONFIG (from os.environ): no file


def test_functions_default_to_flux2_config(cfg: Path) -> None:
    assert set_value("ratio", "3:4") == cfg
    assert get_value("ratio") == "3:4"
    assert load_config(cfg) == {"ratio": "3:4"}


# --- profiles ------------------------------------------------------------------------------

PROFILES = """
ratio = "1:1"
profile = "home"
[profiles.home]
ratio = "4:3"
[profiles.work]
ratio = "16:9"
[profiles.ci]
ratio = "2:3"
"""


def test_profile_chosen_by_cli_then_env_then_file(cfg: Path) -> None:
    write(cfg, PROFILES)
    env = {"FLUX2_PROFILE": "work"}
    settings, _ = resolve(cfg, env, profile="ci")
    assert (settings.profile, asked(settings).ratio) == ("ci", "2:3")
    settings, _ = resolve(cfg, env)
    assert (settings.profile, asked(settings).ratio) == ("work", "16:9")
    settings, _ = resolve(cfg)
    assert (settings.profile, asked(settings).ratio) == ("home", "4:3")


def test_unknown_profile_names_the_existing_ones(cfg: Path) -> None:
    write(cfg, PROFILES)
    with pytest.raises(ConfigError) as caught:
        resolve(cfg, profile="wrok")
    message = caught.value.message
    assert "'wrok'" in message and "--profile" in message
    assert "ci, home, work" in message
    assert caught.value.exit_code == 2


def test_unknown_profile_from_env_is_an_error_too(cfg: Path) -> None:
    with pytest.raises(ConfigError, match="FLUX2_PROFILE"):
        resolve(cfg, {"FLUX2_PROFILE": "nope"})


# --- corrupt and invalid files -------------------------------------------------------------

CORRUPT = b'ratio = "16:9"\napi_key = "unterminated\nres = "2K"\n'


def test_corrupt_toml_is_a_config_error_with_path_and_line(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(CORRUPT)
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert str(cfg) in caught.value.message
    assert "line 2" in caught.value.message
    assert caught.value.exit_code == 2


def test_corrupt_toml_is_never_rewritten(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(CORRUPT)
    with pytest.raises(ConfigError):
        set_value("ratio", "1:1", path=cfg)
    with pytest.raises(ConfigError):
        unset_value("ratio", path=cfg)
    with pytest.raises(ConfigError):
        save_config({"ratio": "1:1"}, cfg)
    with pytest.raises(ConfigError):
        resolve(cfg)
    assert cfg.read_bytes() == CORRUPT
    assert os.listdir(cfg.parent) == ["config.toml"]


def test_invalid_utf8_is_a_config_error(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(b'ratio = "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(cfg)


def test_profiles_must_be_tables(cfg: Path) -> None:
    write(cfg, 'profiles = "work"\n')
    with pytest.raises(ConfigError, match="profiles"):
        load_config(cfg)


def test_invalid_value_in_the_file_names_the_key_and_profile(cfg: Path) -> None:
    write(cfg, '[profiles.work]\nratio = "5:4"\n')
    settings, _ = resolve(cfg, profile="work")  # only a request that uses it is refused
    with pytest.raises(UsageError) as caught:
        asked(settings)
    assert caught.value.message.startswith("config key ratio (profile work): '5:4'")
    assert "config set ratio VALUE --profile work" in " ".join(caught.value.hints)
    write(cfg, 'timeout = "soon"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(cfg)
    assert f"config file {cfg}" in caught.value.message


def test_bad_key_in_the_file_is_refused_without_echoing_it(cfg: Path) -> None:
    write(cfg, f'api_key = "{SENTINEL}\\u0007"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(cfg)
    assert SENTINEL not in str(caught.value)
    assert "control characters" in caught.value.message


def test_output_dir_from_the_file_expands_the_home_folder(
    cfg: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    write(cfg, 'output_dir = "~/pictures"\n')
    assert resolve(cfg)[0].output_dir == str(tmp_path / "pictures")
    assert resolve(cfg, output_dir="-")[0].output_dir == "-"


def test_unknown_keys_in_the_file_are_warned_about(cfg: Path) -> None:
    write(cfg, 'ration = "1:1"\n')
    settings, warnings = resolve(cfg)
    assert asked(settings).ratio == "1:1"
    assert len(warnings) == 1
    assert "'ration'" in warnings[0] and "did you mean 'ratio'" in warnings[0]


# --- permissions and atomic writes ---------------------------------------------------------


@POSIX
def test_readable_file_warns_and_next_write_locks_it_down(cfg: Path) -> None:
    write(cfg, 'ratio = "4:3"\n', mode=0o644)
    os.chmod(cfg.parent, 0o755)
    settings, warnings = resolve(cfg)
    assert asked(settings).ratio == "4:3"  # still works
    assert len(warnings) == 1
    assert "readable by other users" in warnings[0] and "chmod 600" in warnings[0]
    set_value("res", "2K", path=cfg)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.parent.stat().st_mode) == 0o700
    assert resolve(cfg)[1] == []


@POSIX
def test_new_file_and_folder_are_private(tmp_path: Path, cfg: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    set_value("ratio", "1:1", path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@POSIX
def test_a_folder_that_is_not_flux2s_keeps_its_mode(tmp_path: Path, cfg: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    os.chmod(project, 0o755)
    path = project / "flux2.toml"
    set_value("ratio", "1:1", path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(project.stat().st_mode) == 0o755


def test_failed_replace_keeps_the_old_file_and_no_temp(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cfg, 'ratio = "4:3"\n')
    before = cfg.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConfigError, match="old file is intact"):
        set_value("ratio", "16:9", path=cfg)
    assert cfg.read_bytes() == before
    assert os.listdir(cfg.parent) == ["config.toml"]


def test_interrupted_write_keeps_the_old_file_and_no_temp(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(cfg, 'ratio = "4:3"\n')
    before = cfg.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        set_value("ratio", "16:9", path=cfg)
    assert cfg.read_bytes() == before
    assert os.listdir(cfg.parent) == ["config.toml"]


@POSIX
def test_a_symlinked_config_is_written_through(tmp_path: Path, cfg: Path) -> None:
    target = tmp_path / "dotfiles" / "flux2.toml"
    write(target, 'ratio = "4:3"\n')
    cfg.parent.mkdir(parents=True)
    cfg.symlink_to(target)
    set_value("res", "2K", path=cfg)
    assert cfg.is_symlink()
    assert load_config(target) == {"ratio": "4:3", "res": "2K"}


def test_save_drops_none_values(cfg: Path) -> None:
    save_config({"ratio": "1:1", "model": None, "profiles": {"a": {"res": None}}}, cfg)
    assert load_config(cfg) == {"ratio": "1:1", "profiles": {"a": {}}}


# --- keys and values -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["abc123xyz\n", "  abc123xyz  ", "\tabc123xyz\r\n"])
def test_api_key_whitespace_is_stripped(raw: str) -> None:
    assert normalise_api_key(raw) == "abc123xyz"
    assert validate_value("api_key", raw) == "abc123xyz"


@pytest.mark.parametrize("inside", ["\x00", "\x1b", "\x07", "\x7f", "\n", " ", "é"])
def test_api_key_bad_characters_refused_without_echo(inside: str) -> None:
    raw = SENTINEL[:10] + inside + SENTINEL[10:]
    with pytest.raises(UsageError) as caught:
        normalise_api_key(raw)
    assert SENTINEL[:10] not in str(caught.value)
    assert SENTINEL[10:] not in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_empty_api_key_refused(raw: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        normalise_api_key(raw)


@pytest.mark.parametrize(
    ("typo", "nearest"),
    [
        ("ration", "ratio"),
        ("api-kye", "api_key"),
        ("concurency", "concurrency"),
        ("profil", "profile"),
    ],
)
def test_unknown_key_suggests_the_nearest(typo: str, nearest: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_value(typo, "x")
    assert f"did you mean {nearest!r}?" in caught.value.message
    assert caught.value.exit_code == 2


def test_unknown_key_without_a_near_one() -> None:
    with pytest.raises(UsageError) as caught:
        validate_value("zzzzzz", "x")
    assert "did you mean" not in caught.value.message
    assert "ratio" in " ".join(caught.value.hints)


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("ratio", "16:9", "16:9"),
        ("res", "2k", "2K"),
        ("mode", "FLEX", "flex"),
        ("format", "jpg", "jpeg"),
        ("format", "webp", "webp"),
        ("safety", "2", 2),
        ("timeout", "90", 90.0),
        ("poll_interval", "0.5", 0.5),
        ("concurrency", "64", 64),
        ("provider", "Sandbox", "sandbox"),
        ("base_url", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("model", "flux-2-pro", "flux-2-pro"),
        ("output_dir", "~/Pictures", "~/Pictures"),
        ("name", "{date}-{slug}-{n:02d}.{ext}", "{date}-{slug}-{n:02d}.{ext}"),
        ("API-KEY", "abc123xyz", "abc123xyz"),
        ("profile", "work", "work"),
    ],
)
def test_valid_values(key: str, raw: str, expected: object) -> None:
    assert validate_value(key, raw) == expected


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("ratio", "5:4"),
        ("res", "4K"),
        ("mode", "dev"),
        ("format", "gif"),
        ("safety", "high"),
        ("timeout", "0"),
        ("timeout", "-1"),
        ("timeout", "nan"),
        ("timeout", "inf"),
        ("poll_interval", "soon"),
        ("concurrency", "0"),
        ("concurrency", "65"),
        ("concurrency", "2.5"),
        ("provider", "openai"),
        ("base_url", "ftp://example.com"),
        ("base_url", "example.com"),
        ("model", "  "),
        ("output_dir", ""),
        ("name", "{prompt}"),
        ("name", "{slug"),
        ("name", "{}"),
        ("profile", "my profile"),
    ],
)
def test_invalid_values(key: str, raw: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_value(key, raw)
    assert caught.value.exit_code == 2
    assert key in caught.value.message


def test_cli_values_are_validated_naming_the_flag(cfg: Path) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        resolve(cfg, timeout="soon")
    with pytest.raises(UsageError, match="FLUX2_PROVIDER"):
        resolve(cfg, {"FLUX2_PROVIDER": "nope"})


# --- set, get, unset, list -----------------------------------------------------------------


def test_set_get_unset_round_trip_with_profiles(cfg: Path) -> None:
    set_value("ratio", "16:9")
    set_value("ratio", "4:3", profile="work")
    set_value("timeout", 30.0, profile="work")
    assert get_value("ratio") == "16:9"
    assert get_value("ratio", profile="work") == "4:3"
    assert get_value("timeout") is None  # nothing inherited: what the file says
    assert get_value("ratio", profile="missing") is None
    assert unset_value("ratio", profile="work") is True
    assert unset_value("ratio", profile="work") is False
    assert unset_value("model") is False
    assert load_config(cfg) == {"ratio": "16:9", "profiles": {"work": {"timeout": 30.0}}}


def test_unset_without_a_file_writes_nothing(cfg: Path) -> None:
    assert unset_value("ratio") is False
    assert not cfg.exists()


def test_profile_key_is_top_level_only(cfg: Path) -> None:
    with pytest.raises(UsageError, match="top-level"):
        set_value("profile", "work", profile="home")


def test_set_refuses_a_bad_profile_name(cfg: Path) -> None:
    with pytest.raises(UsageError, match="profile name"):
        set_value("ratio", "1:1", profile="a.b")
    assert not cfg.exists()


def test_redact() -> None:
    # config shows keys through the one masking function of redact.py
    assert mask("sk-abcdefghwxyz") == "…wxyz"
    assert mask("12345678") == "…5678"
    assert mask("1234567") == "…"
    assert mask("") == "…"


def test_list_redacts_secrets_everywhere(cfg: Path) -> None:
    set_value("api_key", SENTINEL)
    set_value("api_key", "short", profile="work")
    set_value("ratio", "4:3", profile="work")
    listed = list_values()
    assert listed == {
        "api_key": "…wxyz",
        "profiles": {"work": {"api_key": "…", "ratio": "4:3"}},
    }
    assert SENTINEL not in repr(listed)
    shown = list_values(show_secrets=True)
    assert shown["api_key"] == SENTINEL
    assert shown["profiles"]["work"]["api_key"] == "short"


def test_list_of_a_missing_file_is_empty(cfg: Path) -> None:
    assert list_values() == {}


# --- a key belongs to its table's provider ---------------------------------------------------


def test_config_key_of_a_table_naming_another_provider_is_not_used(cfg: Path) -> None:
    # provider = "apiinone" says whose key this is: it is never sent to bfl.
    write(cfg, 'provider = "apiinone"\napi_key = "apiinone-key-0000"\n')
    settings, _ = resolve(cfg, provider="bfl")
    assert settings.api_key is None
    settings, _ = resolve(cfg, {"FLUX2_PROVIDER": "bfl"})
    assert settings.api_key is None
    settings, _ = resolve(cfg)
    assert settings.api_key == "apiinone-key-0000"


def test_profile_key_follows_the_profile_provider_and_falls_back_to_the_top(cfg: Path) -> None:
    write(
        cfg,
        'provider = "bfl"\napi_key = "bfl-key-00000000"\n'
        '[profiles.work]\nprovider = "apiinone"\napi_key = "work-key-0000"\n',
    )
    settings, _ = resolve(cfg, profile="work")
    assert settings.api_key == "work-key-0000"
    # The profile's key is API in One's; the top-level one is BFL's.
    settings, _ = resolve(cfg, profile="work", provider="bfl")
    assert (settings.api_key, settings.api_key_source) == ("bfl-key-00000000", f"config file {cfg}")


def test_config_key_without_a_provider_serves_any_provider(cfg: Path) -> None:
    write(cfg, 'api_key = "file-key-000000"\n')
    settings, _ = resolve(cfg, provider="bfl")
    assert settings.api_key == "file-key-000000"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("off", False), ("YES", True)])
def test_open_and_preview_are_booleans(raw: str, expected: bool) -> None:
    from flux2_cli.config import validate_value

    assert validate_value("preview", raw) is expected
    assert validate_value("open", raw) is expected


def test_open_and_preview_from_the_file_and_a_bad_value_names_it(tmp_path: Path) -> None:
    from flux2_cli.config import resolve_settings
    from flux2_cli.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text("preview = true\n")
    settings, _ = resolve_settings({}, env={}, path=path)
    assert (settings.preview, settings.open) == (True, False)
    path.write_text('open = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"Invalid open 'sometimes' \(from config file"):
        resolve_settings({}, env={}, path=path)
