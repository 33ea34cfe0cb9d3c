"""The TOML config file: keys, profiles, precedence, validation, redaction and atomic writes.

Where each setting comes from, highest first (the API key lookup order is the same):

1. the command-line option (``--api-key``, ``--provider``, ``--ratio`` ...);
2. the environment: ``FLUX2_API_KEY``, then the resolved provider's own variable
   (``APIINONE_API_KEY``, ``BFL_API_KEY`` ... see :data:`flux2_cli.env.PROVIDER_KEY_VARS`),
   ``FLUX2_PROVIDER``, ``FLUX2_BASE_URL`` (``FLUX2_PROFILE`` picks the profile);
3. the chosen profile ``[profiles.NAME]`` (named by ``--profile``, else ``FLUX2_PROFILE``,
   else the file's top-level ``profile`` key);
4. the file's top level;
5. :data:`DEFAULTS`.

A key in the file belongs to the provider its table names (a profile inherits the top level's
``provider``): it is used only for that provider, so that a key is never sent to another
provider's host. A table that names no provider lends its key to any.

The file is ``config.toml`` in platformdirs' user config dir, or the file ``FLUX2_CONFIG``
names. It is read, never repaired: a corrupt file is an error (exit 2) and is never rewritten.
Writes go to a temp file in the same folder, are fsynced and then renamed over the old file,
with mode 0600.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import stat
import string
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux2_cli import env as envvars
from flux2_cli.errors import ConfigError, UsageError
from flux2_cli.providers import DEFAULT_PROVIDER, provider_ids
from flux2_cli.redact import mask
from flux2_cli.request import CONFIG_KEYS, OPTIONS, REQUEST_DEFAULTS, Invalid, is_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# The request options (model, mode, ratio, res, format, safety) come from request.py's table:
# this module stores them as written and never checks them for a run; the request builder does,
# naming the config key and profile. ``config set`` checks them with the same rule.
KEYS: tuple[str, ...] = (
    "provider",
    "api_key",
    "base_url",
    *CONFIG_KEYS,
    "output_dir",
    "name",
    "timeout",
    "poll_interval",
    "concurrency",
    "open",
    "preview",
)
PROFILE_KEY = "profile"  # top level only: the default profile's name
PROFILES_TABLE = "profiles"
SECRET_KEYS: tuple[str, ...] = ("api_key",)
ALL_KEYS: tuple[str, ...] = (*KEYS, PROFILE_KEY)

DEFAULTS: dict[str, Any] = {
    "provider": DEFAULT_PROVIDER,
    "api_key": None,
    "base_url": None,
    **REQUEST_DEFAULTS,  # shown by `config get`; the request builder applies them
    "output_dir": ".",
    "name": "{slug}-{id8}",
    "timeout": 600.0,
    "poll_interval": 1.0,
    "concurrency": 4,
    "open": False,
    "preview": False,
}

MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 64
FILE_MODE = 0o600
DIR_MODE = 0o700
MASKED = mask("")  # a secret that is not a string, or empty: nothing of it shown
_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Settings:
    """Every setting after precedence has been applied; ``api_key_source`` says where the key
    came from (``--api-key``, ``FLUX2_API_KEY``, ``BFL_API_KEY``, ``config file PATH`` ...)."""

    provider: str
    api_key: str | None
    api_key_source: str | None
    base_url: str | None
    output_dir: str
    name: str
    timeout: float
    poll_interval: float
    concurrency: int
    profile: str | None
    config_path: Path
    # --open / --preview by default (gen, download, status --wait).
    open: bool = False
    preview: bool = False
    # The request options the file sets, as written: the chosen profile's, then the top
    # level's (profile name None). The request builder checks them and names their source.
    request_defaults: tuple[tuple[str | None, Mapping[str, Any]], ...] = ()


# --- reading -------------------------------------------------------------------------------


def _config_path(path: Path | None) -> Path:
    return path if path is not None else envvars.config_file()


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    """The TOML document in ``data``, or a ConfigError with the path and line/column."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid UTF-8 (byte {exc.start}).",
            hints=_fix_hints(path),
        ) from None
    try:
        parsed: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message already ends with "(at line N, column M)".
        raise ConfigError(
            f"Config file {path} is not valid TOML: {exc}", hints=_fix_hints(path)
        ) from None
    profiles = parsed.get(PROFILES_TABLE)
    if profiles is not None:
        if not isinstance(profiles, dict):
            raise ConfigError(
                f"Config file {path}: 'profiles' must be a table of [profiles.NAME] tables.",
                hints=_fix_hints(path),
            )
        for name, table in profiles.items():
            if not isinstance(table, dict):
                raise ConfigError(
                    f"Config file {path}: profiles.{name} must be a table.",
                    hints=_fix_hints(path),
                )
    return parsed


def _fix_hints(path: Path) -> list[str]:
    return [f"Fix or remove {path}; flux2 never rewrites a file it cannot read."]


def permission_warning(path: Path) -> str | None:
    """A warning when ``path`` can be read or written by other users (POSIX only)."""
    if os.name == "nt":
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & 0o077:
        return (
            f"config file {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run chmod 600 {path} (the next `flux2 config set` also fixes it)"
        )
    return None


def load_config(path: Path | None = None, warnings_out: list[str] | None = None) -> dict[str, Any]:
    """The parsed config file; ``{}`` when it does not exist.

    A corrupt file raises ConfigError naming the path and the line and column. A file that other
    users can read adds a warning to ``warnings_out`` (when given).
    """
    path = _config_path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"Config path {path} is a folder, not a file.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    parsed = _parse(data, path)
    if warnings_out is not None:
        warning = permission_warning(path)
        if warning:
            warnings_out.append(warning)
    return parsed


# --- validation ----------------------------------------------------------------------------


def normalise_key_name(key: str) -> str:
    """The canonical config key for ``key`` (``API-Key`` -> ``api_key``), or a UsageError that
    suggests the nearest known key."""
    name = key.strip().lower().replace("-", "_")
    if name in ALL_KEYS:
        return name
    close = difflib.get_close_matches(name, ALL_KEYS, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else "."
    raise UsageError(
        f"Unknown config key {key!r}{suggestion}",
        hints=[f"Known keys: {', '.join(ALL_KEYS)}."],
    )


def _api_key_problem(key: str) -> str | None:
    """What is wrong with a stripped key, in words that never repeat it; None when fine."""
    if not key:
        return "The API key is empty"
    if any(unicodedata.category(ch).startswith("C") for ch in key):
        return "The API key contains control characters (value not shown); paste it again"
    if any(ch.isspace() or not ch.isascii() for ch in key):
        return (
            "The API key contains spaces or non-ASCII characters (value not shown); paste it again"
        )
    return None


def normalise_api_key(raw: str) -> str:
    """The key with surrounding whitespace and newlines removed.

    Refuses an empty key and one with control characters, spaces or non-ASCII characters
    inside (a bad paste); the message never repeats the value.
    """
    key = raw.strip()
    problem = _api_key_problem(key)
    if problem:
        raise UsageError(f"{problem}.")
    return key


def _bad(key: str, value: Any, rule: str, source: str) -> UsageError:
    shown = "(value not shown)" if key in SECRET_KEYS else repr(value)
    where = f" (from {source})" if source else ""
    message = f"Invalid {key} {shown}{where}: {rule}."
    if source.startswith("config file"):
        return ConfigError(message)
    return UsageError(message)


def _as_text(key: str, value: Any, source: str) -> str:
    if not isinstance(value, str):
        raise _bad(key, value, "expected a string", source)
    return value.strip()


def _as_float(key: str, value: Any, source: str) -> float:
    if isinstance(value, bool):
        raise _bad(key, value, "expected a number of seconds", source)
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _bad(key, value, "expected a number of seconds", source) from None
    if not math.isfinite(number) or number <= 0:
        raise _bad(key, value, "expected a positive number of seconds", source)
    return number


def _as_int(key: str, value: Any, source: str) -> int:
    if isinstance(value, (bool, float)):
        raise _bad(key, value, "expected an integer", source)
    try:
        return int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise _bad(key, value, "expected an integer", source) from None


BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
BOOL_WORDS.update({"false": False, "no": False, "off": False, "0": False})


def _as_bool(key: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    raise _bad(key, value, "expected true or false", source)


def _name_template_problem(template: str) -> str | None:
    # The fields are naming.py's, the one list of what a template may hold.
    from flux2_cli.naming import TEMPLATE_FIELDS as NAME_FIELDS

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return str(exc)
    for name in fields:
        if name not in NAME_FIELDS:
            known = " ".join(f"{{{field}}}" for field in sorted(NAME_FIELDS))
            return f"unknown field {{{name}}}; use {known}"
    return None


def check_profile_name(name: str) -> str:
    """``name`` stripped, if it is a usable profile name (letters, digits, ``-``, ``_``)."""
    text = name.strip()
    if not _PROFILE_NAME_RE.match(text):
        raise UsageError(f"Invalid profile name {name!r}: use letters, digits, '-' and '_' only.")
    return text


def coerce_value(key: str, value: Any, source: str = "") -> Any:
    """``value`` (a string, or a TOML/CLI typed value) checked and converted for ``key``.

    ``source`` names where it came from (``--ratio``, ``FLUX2_PROVIDER``, ``config file ...``)
    for the error message; errors from the config file are ConfigError.
    """
    if key == "api_key":
        if not isinstance(value, str):
            raise _bad(key, value, "expected a string", source)
        key_text = value.strip()
        problem = _api_key_problem(key_text)
        if problem:
            where = f" (from {source})" if source else ""
            error = ConfigError if source.startswith("config file") else UsageError
            raise error(f"{problem}{where}.")
        return key_text
    if key == "provider":
        text = _as_text(key, value, source).lower()
        if text not in provider_ids():
            raise _bad(key, value, f"choose one of {', '.join(provider_ids())}", source)
        return text
    if key == "base_url":
        text = _as_text(key, value, source)
        if not is_url(text):
            raise _bad(key, value, "expected an http(s) URL", source)
        return text
    if key in CONFIG_KEYS:
        try:
            return OPTIONS[key].check(value)
        except Invalid as exc:
            label = f"{key} (from {source})" if source else key
            error = ConfigError if source.startswith("config file") else UsageError
            raise error(f"{label}: {exc}.") from None
    if key == "output_dir":
        text = _as_text(key, value, source)
        if not text:
            raise _bad(key, value, "expected a folder", source)
        return text
    if key == "name":
        text = _as_text(key, value, source)
        if not text:
            raise _bad(key, value, "expected a file name template", source)
        problem = _name_template_problem(text)
        if problem:
            raise _bad(key, value, problem, source)
        return text
    if key in ("timeout", "poll_interval"):
        return _as_float(key, value, source)
    if key == "concurrency":
        number = _as_int(key, value, source)
        if not MIN_CONCURRENCY <= number <= MAX_CONCURRENCY:
            raise _bad(key, value, f"expected {MIN_CONCURRENCY} to {MAX_CONCURRENCY}", source)
        return number
    if key in ("open", "preview"):
        return _as_bool(key, value, source)
    if key == PROFILE_KEY:
        text = _as_text(key, value, source)
        try:
            return check_profile_name(text)
        except UsageError:
            raise _bad(key, value, "use letters, digits, '-' and '_' only", source) from None
    canonical = normalise_key_name(key)  # raises, with a suggestion, for an unknown key
    if canonical != key:
        return coerce_value(canonical, value, source)
    raise AssertionError(f"config key {key!r} has no validator")  # pragma: no cover


def validate_value(key: str, raw: str) -> Any:
    """The typed, validated value of ``raw`` for ``key`` (for ``config set``).

    An unknown key is a UsageError that suggests the nearest one ("did you mean 'ratio'?").
    """
    return coerce_value(normalise_key_name(key), raw)


# --- resolving -----------------------------------------------------------------------------


def _profiles(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    profiles = data.get(PROFILES_TABLE)
    return dict(profiles) if isinstance(profiles, dict) else {}


def _choose_profile(
    cli: Mapping[str, Any], environ: Mapping[str, str], data: Mapping[str, Any], path: Path
) -> tuple[str | None, str]:
    """The chosen profile's name and where the choice came from."""
    candidates: list[tuple[Any, str]] = [
        (cli.get("profile"), "--profile"),
        (environ.get(envvars.FLUX2_PROFILE), envvars.FLUX2_PROFILE),
        (data.get(PROFILE_KEY), f"the 'profile' key of {path}"),
    ]
    for value, source in candidates:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise ConfigError(f"Config file {path}: 'profile' must be a profile name.")
        return value.strip(), source
    return None, ""


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value is not None and value.strip() else None


def resolve_settings(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> tuple[Settings, list[str]]:
    """Settings from the command line, the environment, the config file and the defaults.

    ``cli`` holds command-line values (``None`` = not given) under the config key names plus
    ``profile``. See the module docstring for the order. Returns the settings and warnings for
    people (e.g. a config file readable by others). An unknown profile is a ConfigError that
    names the profiles that exist.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    path = path if path is not None else envvars.config_file(environ)
    warnings: list[str] = []
    data = load_config(path, warnings)

    profile, profile_source = _choose_profile(cli, environ, data, path)
    profiles = _profiles(data)
    profile_table: dict[str, Any] = {}
    if profile is not None:
        if profile not in profiles:
            existing = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(
                f"Unknown profile {profile!r} (from {profile_source}); "
                f"profiles in {path}: {existing}.",
                hints=[f"Create it with: flux2 config set KEY VALUE --profile {profile}"],
            )
        profile_table = profiles[profile]

    top_source = f"config file {path}"
    profile_source_name = f"config file {path} (profile {profile})"
    for table, table_source in ((data, top_source), (profile_table, profile_source_name)):
        for unknown in sorted(set(table) - set(ALL_KEYS) - {PROFILES_TABLE}):
            close = difflib.get_close_matches(unknown, ALL_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warnings.append(f"{table_source}: unknown key {unknown!r} ignored{hint}")

    def layered(key: str) -> tuple[Any, str | None]:
        """The value of ``key`` from the profile, the top level or the defaults."""
        if key in profile_table:
            return coerce_value(key, profile_table[key], profile_source_name), profile_source_name
        if key in data:
            return coerce_value(key, data[key], top_source), top_source
        return DEFAULTS[key], None

    def given(key: str) -> Any:
        value = cli.get(key)
        return None if value is None else coerce_value(key, value, _flag(key))

    values: dict[str, Any] = {}
    # provider first: it decides which provider variable holds the key.
    provider = given("provider")
    if provider is None:
        env_provider = _env_value(environ, envvars.FLUX2_PROVIDER)
        if env_provider is not None:
            provider = coerce_value("provider", env_provider, envvars.FLUX2_PROVIDER)
        else:
            provider = layered("provider")[0]
    values["provider"] = provider

    api_key: str | None = given("api_key")
    api_key_source: str | None = "--api-key" if api_key is not None else None
    if api_key is None:
        key_vars = [envvars.FLUX2_API_KEY]
        provider_var = envvars.PROVIDER_KEY_VARS.get(provider)
        if provider_var:
            key_vars.append(provider_var)
        for var in key_vars:
            raw = _env_value(environ, var)
            if raw is not None:
                api_key, api_key_source = coerce_value("api_key", raw, var), var
                break
    if api_key is None:
        api_key, api_key_source = _config_api_key(
            provider, data, profile_table, top_source, profile_source_name
        )

    base_url = given("base_url")
    if base_url is None:
        env_url = _env_value(environ, envvars.FLUX2_BASE_URL)
        if env_url is not None:
            base_url = coerce_value("base_url", env_url, envvars.FLUX2_BASE_URL)
        else:
            base_url = layered("base_url")[0]
    values["base_url"] = base_url

    for key in KEYS:
        if key in values or key == "api_key" or key in CONFIG_KEYS:
            continue
        value = given(key)
        values[key] = value if value is not None else layered(key)[0]

    settings = Settings(
        provider=values["provider"],
        api_key=api_key,
        api_key_source=api_key_source,
        base_url=values["base_url"],
        # The shell expands ~ on the command line but not inside TOML.
        output_dir=os.path.expanduser(values["output_dir"]),
        name=values["name"],
        timeout=float(values["timeout"]),
        poll_interval=float(values["poll_interval"]),
        concurrency=int(values["concurrency"]),
        profile=profile,
        config_path=path,
        open=bool(values["open"]),
        preview=bool(values["preview"]),
        request_defaults=tuple(
            (name, {key: table[key] for key in CONFIG_KEYS if key in table})
            for name, table in ((profile, profile_table), (None, data))
            if any(key in table for key in CONFIG_KEYS)
        ),
    )
    return settings, warnings


def _table_provider(table: Mapping[str, Any]) -> str | None:
    value = table.get("provider")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _config_api_key(
    provider: str,
    data: Mapping[str, Any],
    profile_table: Mapping[str, Any],
    top_source: str,
    profile_source: str,
) -> tuple[str | None, str | None]:
    """The config file's key for ``provider``: a key belongs to the provider its table names.

    A profile's key is its provider's (its own ``provider``, else the top level's); a top-level
    key is the top-level provider's. A table that names no provider serves any. A key that
    belongs to another provider is never sent elsewhere: the next layer is tried instead.
    """
    top_owner = _table_provider(data)
    layers = (
        (profile_table, _table_provider(profile_table) or top_owner, profile_source),
        (data, top_owner, top_source),
    )
    for table, owner, source in layers:
        if "api_key" in table and owner in (None, provider):
            return coerce_value("api_key", table["api_key"], source), source
    return None, None


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


# --- reading and writing single values -----------------------------------------------------


def _table(data: dict[str, Any], profile: str | None, *, create: bool) -> dict[str, Any] | None:
    if profile is None:
        return data
    profiles = data.get(PROFILES_TABLE)
    if not isinstance(profiles, dict):
        if not create:
            return None
        profiles = data[PROFILES_TABLE] = {}
    table = profiles.get(profile)
    if not isinstance(table, dict):
        if not create:
            return None
        table = profiles[profile] = {}
    return table


def _key_for(key: str, profile: str | None) -> str:
    name = normalise_key_name(key)
    if name == PROFILE_KEY and profile is not None:
        raise UsageError("'profile' is a top-level key; drop --profile to set the default profile.")
    return name


def set_value(
    key: str, value: Any, *, profile: str | None = None, path: Path | None = None
) -> Path:
    """Write ``key = value`` at the top level or in ``[profiles.NAME]``; returns the file's path.

    ``value`` should come from :func:`validate_value`. A corrupt existing file is never
    overwritten (ConfigError).
    """
    path = _config_path(path)
    name = _key_for(key, profile)
    if profile is not None:
        profile = check_profile_name(profile)
    data = load_config(path)
    table = _table(data, profile, create=True)
    assert table is not None  # create=True always returns a table
    table[name] = value
    save_config(data, path)
    return path


def unset_value(key: str, *, profile: str | None = None, path: Path | None = None) -> bool:
    """Remove ``key``; True when it was set. The profile's table stays, even if empty."""
    path = _config_path(path)
    name = _key_for(key, profile)
    data = load_config(path)
    table = _table(data, profile, create=False)
    if table is None or name not in table:
        return False
    del table[name]
    save_config(data, path)
    return True


def get_value(
    key: str,
    *,
    profile: str | None = None,
    path: Path | None = None,
    warnings_out: list[str] | None = None,
) -> Any | None:
    """The value written in the file for ``key`` (top level or that profile only), or None.

    Nothing is inherited or defaulted here: this is what the file says.
    """
    name = _key_for(key, profile)
    data = load_config(_config_path(path), warnings_out)
    table = _table(data, profile, create=False)
    if table is None:
        return None
    return table.get(name)


def _redacted_table(table: Mapping[str, Any], show_secrets: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in table.items():
        if key == PROFILES_TABLE:
            continue
        if key in SECRET_KEYS and not show_secrets:
            value = mask(value) if isinstance(value, str) and value else MASKED
        result[key] = value
    return result


def list_values(
    *,
    show_secrets: bool = False,
    path: Path | None = None,
    warnings_out: list[str] | None = None,
) -> dict[str, Any]:
    """The file's settings: the top level, then ``profiles`` (nested), secrets redacted."""
    data = load_config(_config_path(path), warnings_out)
    result = _redacted_table(data, show_secrets)
    profiles = _profiles(data)
    if profiles:
        result[PROFILES_TABLE] = {
            name: _redacted_table(table, show_secrets) for name, table in profiles.items()
        }
    return result


# --- atomic save ---------------------------------------------------------------------------


def _owned_folder(folder: Path) -> bool:
    """True for a folder flux2 may lock down to 0700: its own, not a home or project folder."""
    if folder.name == envvars.APP_NAME:
        return True
    return folder == envvars.config_file({}).parent


def _prepare_folder(folder: Path) -> None:
    if folder.is_dir():
        if os.name != "nt" and _owned_folder(folder):
            mode = stat.S_IMODE(folder.stat().st_mode)
            if mode != DIR_MODE:
                # Not ours to change after all: the file itself is still written 0600.
                with contextlib.suppress(OSError):
                    os.chmod(folder, DIR_MODE)
        return
    try:
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if os.name != "nt":
            os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise ConfigError(f"Cannot create config folder {folder}: {exc.strerror or exc}.") from None


def _strip_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _strip_none(value) if isinstance(value, Mapping) else value
        for key, value in data.items()
        if value is not None
    }


def save_config(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600, its folder created 0700.

    A temp file in the same folder is written, fsynced and renamed over ``path``; the old file
    is intact if anything fails. An existing file that does not parse is never overwritten.
    """
    import tomli_w

    if path.is_symlink():
        # Write through to the link's target so dotfile managers keep their link.
        path = path.resolve()
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    if existing is not None:
        _parse(existing, path)  # raises ConfigError: a file we cannot read is never replaced

    from flux2_cli.atomic import write_atomic

    text = tomli_w.dumps(_strip_none(data))
    _prepare_folder(path.parent)
    try:
        write_atomic(path, text, mode=FILE_MODE, sync_folder=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot write config file {path}: {exc.strerror or exc}; the old file is intact."
        ) from None
