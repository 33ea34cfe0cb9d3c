"""The request builder: one road, every value with its source, checked once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.build import CONFIG, ENTRY, FLAG, Layer, RequestError, build_request
from flux2_cli.providers import get_provider
from tests.helpers import run_cli

RATIO_RULE = "'5:5' is not supported; choose one of 1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3."
CREATE_URL = "https://apiin.one/api/v1/images/generations"


def build(*layers: Layer, provider: str = "bfl") -> object:
    return build_request(get_provider(provider), list(layers))


def config_file() -> Path:
    import os

    return Path(os.environ["FLUX2_CONFIG"])


def write_config(text: str) -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


# --------------------------------------------------------------------------- units


def test_precedence_is_the_order_of_the_layers_and_each_value_keeps_its_source() -> None:
    built = build_request(
        get_provider("bfl"),
        [
            Layer(ENTRY, {"prompt": "a red fox", "ratio": "16:9"}, "m.jsonl line 3"),
            Layer(FLAG, {"ratio": "4:3", "res": "2k", "safety": None}),
            Layer(CONFIG, {"res": "1K", "safety": 2, "mode": "flex"}, "profile work"),
            Layer(CONFIG, {"safety": 5, "format": "jpg"}),
        ],
    )
    request = built.request
    assert (request.ratio, request.res, request.safety, request.mode) == ("16:9", "2K", 2, "flex")
    assert request.format == "jpeg"
    assert built.sources == {
        "prompt": "m.jsonl line 3: prompt",
        "ratio": "m.jsonl line 3: ratio",
        "res": "--res",
        "safety": "config key safety (profile work)",
        "mode": "config key mode (profile work)",
        "format": "config key format",
    }


def test_every_problem_is_reported_at_once_each_with_its_source() -> None:
    with pytest.raises(RequestError) as caught:
        build(
            Layer(FLAG, {"prompt": "ab", "ratio": "5:5", "seed": "x"}),
            Layer(CONFIG, {"res": "8K"}, "profile work"),
        )
    assert caught.value.problems == [
        "PROMPT: the prompt is too short: at least 3 characters.",
        f"--ratio: {RATIO_RULE}",
        "config key res (profile work): '8K' is not supported; choose one of 1K, 2K.",
        "--seed: 'x' is not an integer.",
    ]
    assert caught.value.exit_code == 2
    assert any("flux2 config set res VALUE --profile work" in h for h in caught.value.hints)


def test_the_higher_layer_chooses_how_the_size_is_given() -> None:
    # A config ratio never fights --width/--height ...
    request = build(
        Layer(FLAG, {"prompt": "a red fox", "width": 1024, "height": 768}),
        Layer(CONFIG, {"ratio": "16:9"}),
    ).request  # type: ignore[attr-defined]
    assert (request.width, request.height, request.ratio) == (1024, 768, "1:1")
    # ... an entry's ratio wins over width/height on the command line ...
    request = build(
        Layer(ENTRY, {"prompt": "a red fox", "ratio": "3:2"}, "m line 1"),
        Layer(FLAG, {"width": 1024, "height": 768}),
    ).request  # type: ignore[attr-defined]
    assert (request.width, request.ratio) == (None, "3:2")
    # ... and both in one layer is a mistake.
    with pytest.raises(RequestError, match="m line 1: width: give width/height or ratio/res"):
        build(
            Layer(
                ENTRY, {"prompt": "a red fox", "ratio": "3:2", "width": 8, "height": 8}, "m line 1"
            )
        )


def test_a_config_default_the_provider_does_not_take_is_skipped_with_one_notice() -> None:
    built = build(
        Layer(FLAG, {"prompt": "a red fox"}),
        Layer(CONFIG, {"safety": 3, "format": "png"}),
        provider="apiinone",
    )
    assert built.request.safety is None and built.request.format is None  # type: ignore[attr-defined]
    assert built.notices == (  # type: ignore[attr-defined]
        "config key format = 'png' does not apply to provider apiinone; not sent.",
        "config key safety = 3 does not apply to provider apiinone; not sent.",
    )


def test_the_same_option_asked_for_is_refused_naming_where_it_was_asked() -> None:
    with pytest.raises(RequestError) as caught:
        build(
            Layer(ENTRY, {"prompt": "a red fox", "safety": 3}, "m.jsonl line 2"),
            provider="apiinone",
        )
    assert caught.value.message == "m.jsonl line 2: safety: not taken (provider apiinone)."


def test_a_config_value_out_of_the_providers_range_names_the_config_key() -> None:
    with pytest.raises(RequestError) as caught:
        build(Layer(FLAG, {"prompt": "a red fox"}), Layer(CONFIG, {"safety": 9}, "profile work"))
    assert caught.value.message == (
        "config key safety (profile work): 9 is outside 0–5 (provider bfl)."
    )


# --------------------------------------------------------------------------- through the commands


def test_one_bad_value_from_a_flag_a_manifest_line_and_the_config_gives_one_message(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """The hallway check: one sentence, three sources, nothing sent."""
    from_flag = run_cli(["gen", "a red fox", "--ratio", "5:5", "--provider", "sandbox"])

    manifest = tmp_path / "prompts.jsonl"
    manifest.write_text('{"prompt": "a red fox"}\n\n{"prompt": "a blue whale", "ratio": "5:5"}\n')
    from_manifest = run_cli(["batch", str(manifest), "--provider", "sandbox"])

    write_config('[profiles.work]\nratio = "5:5"\n')
    from_config = run_cli(["gen", "a red fox", "--profile", "work", "--provider", "sandbox"])

    sources = ("--ratio", "prompts.jsonl line 3: ratio", "config key ratio (profile work)")
    for result, source in zip((from_flag, from_manifest, from_config), sources, strict=True):
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines()[0] == f"error: {source}: {RATIO_RULE}"
    assert httpx_mock.get_requests() == []


def test_config_safety_and_format_do_not_break_a_provider_without_them(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str
) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    assert run_cli(["config", "set", "safety", "3"]).exit_code == 0
    assert run_cli(["config", "set", "format", "png"]).exit_code == 0
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, json={"code": 200, "data": {"task_id": "t-123456789"}}
    )
    result = run_cli(["gen", "a red fox", "--provider", "apiinone", "--no-wait"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "t-123456789"
    assert result.stderr.count("does not apply to provider apiinone") == 2
    sent = json.loads(httpx_mock.get_requests()[0].content)
    assert "safety_tolerance" not in sent and "output_format" not in sent
    # The same options on the command line are still refused: nothing asked is dropped.
    refused = run_cli(["gen", "a red fox", "--provider", "apiinone", "--safety", "3"])
    assert refused.exit_code == 2 and "--safety: not taken (provider apiinone)" in refused.stderr


def test_batch_reports_a_config_notice_once_not_per_entry(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    write_config("safety = 3\n")
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\na blue whale\na green frog\n")
    result = run_cli(["batch", str(manifest), "--provider", "sandbox", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("config key safety = 3 does not apply to provider sandbox") == 1


@pytest.mark.parametrize("provider", ["apiinone", "bfl", "vtrix", "apimart"])
def test_dry_run_prints_the_request_the_client_then_sends(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str, provider: str
) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    args = ["gen", "a red fox", "--provider", provider, "--ratio", "16:9", "--no-wait"]
    dry = run_cli([*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    shown = json.loads(dry.stdout)
    assert httpx_mock.get_requests() == []

    httpx_mock.add_response(json={"id": "t-123456789", "task_id": "t-123456789"})
    run_cli(args)
    (sent,) = httpx_mock.get_requests()
    assert (shown["method"], shown["url"]) == (sent.method, str(sent.url))
    assert shown["body"] == json.loads(sent.content)
    for name, value in sent.headers.raw:
        header = name.decode()
        if sentinel_key.encode() in value:
            assert shown["headers"][header] == "***"
        elif header.lower() == "idempotency-key":
            # Each gen is a new attempt, with its own key (APIMart replays a repeated one).
            assert shown["headers"][header].startswith("flux2-")
        else:
            assert shown["headers"][header] == value.decode()
    assert sentinel_key not in dry.stdout + dry.stderr


def test_a_provider_rule_that_names_no_option_still_names_the_entry() -> None:
    from flux2_cli.errors import UsageError

    class Picky:
        capabilities = get_provider("bfl").capabilities

        def validate(self, request: object) -> None:
            raise UsageError("webhook secret: given without a callback URL (provider bfl).")

    with pytest.raises(RequestError) as caught:
        build_request(Picky(), [Layer(ENTRY, {"prompt": "a red fox"}, "m.jsonl line 4")])  # type: ignore[arg-type]
    assert caught.value.problems == [
        "m.jsonl line 4: webhook secret: given without a callback URL (provider bfl)."
    ]


def test_a_request_option_is_one_row_that_config_and_manifests_read() -> None:
    """The hallway: config.py and the manifest reader take their request keys from
    request.OPTIONS, so a new option needs no change in config.py or jobs.py."""
    from flux2_cli import config
    from flux2_cli.batch import manifest
    from flux2_cli.request import CONFIG_KEYS, OPTIONS

    assert set(OPTIONS) <= set(manifest.KNOWN_KEYS)
    assert set(CONFIG_KEYS) <= set(config.KEYS)
    assert not set(CONFIG_KEYS) & {f.name for f in config.Settings.__dataclass_fields__.values()}


def test_a_bad_prompt_is_one_problem_and_a_missing_one_another() -> None:
    with pytest.raises(RequestError) as caught:
        build(Layer(FLAG, {"prompt": "a red \udcff fox"}))
    assert caught.value.problems == [
        "PROMPT: is not valid UTF-8 (at character 7); save it as UTF-8."
    ]
    with pytest.raises(RequestError) as caught:
        build(Layer(FLAG, {"ratio": "1:1"}))
    assert caught.value.problems == ["no prompt given."]


@pytest.mark.parametrize(
    ("entry", "provider", "expected"),
    [
        (
            {"seed": 3},
            "apiinone",
            "m line 1: seed: not documented; send it anyway with params seed=N "
            "(provider apiinone).",
        ),
        (
            {"width": 1024, "height": 1024},
            "apimart",
            "m line 1: width/height: not taken; this provider sizes images by ratio and res "
            "only (provider apimart).",
        ),
    ],
)
def test_a_manifest_entry_is_told_in_its_own_keys_never_in_flags(
    entry: dict[str, object], provider: str, expected: str
) -> None:
    with pytest.raises(RequestError) as caught:
        build(Layer(ENTRY, {"prompt": "a red fox", **entry}, "m line 1"), provider=provider)
    assert caught.value.problems == [expected]
