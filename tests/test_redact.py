"""Redaction of keys and signed URLs."""

from __future__ import annotations

from flux2_cli import redact


def test_mask_shows_at_most_the_last_four() -> None:
    assert redact.mask("sk-abcdefghwxyz") == "…wxyz"
    assert redact.mask("short") == "…"
    assert redact.mask(None) == "(none)"


def test_redact_url_hides_query_values_and_user_info() -> None:
    url = "https://user:pw@cdn.example/x.png?X-Amz-Signature=abc&id=7&token=t0k"
    shown = redact.redact_url(url)
    assert "abc" not in shown and "t0k" not in shown and "pw" not in shown
    assert "id=7" in shown and shown.startswith("https://cdn.example/x.png?")


def test_redact_headers_hides_credentials_only() -> None:
    shown = redact.redact_headers(
        {"Authorization": "Bearer k", "x-key": "k", "Accept": "application/json"}
    )
    assert shown == {"Authorization": "***", "x-key": "***", "Accept": "application/json"}


def test_scrub_removes_the_given_secrets_and_bearer_tokens(sentinel_key: str) -> None:
    secrets = redact.Secrets([sentinel_key])
    text = f"failed with key {sentinel_key}; header Bearer abc.def"
    cleaned = redact.scrub_all(text, secrets)
    assert sentinel_key not in cleaned and "abc.def" not in cleaned


def test_short_strings_are_not_kept_as_secrets() -> None:
    secrets = redact.Secrets(["ab", None])
    assert secrets.scrub("a tab and a cab") == "a tab and a cab"


def test_secrets_are_per_instance_not_process_wide(sentinel_key: str) -> None:
    # No module-level registry: one command's keys never leak into another's scrubbing.
    redact.Secrets([sentinel_key])
    assert redact.scrub(f"x {sentinel_key}") == f"x {sentinel_key}"
    assert redact.Secrets().scrub(f"x {sentinel_key}") == f"x {sentinel_key}"
