"""The context object: settings, output, and lazily built provider, client and ledger.

Everything that touches the outside world comes through one ``Context`` so that tests can
swap it (the sleep, the clock) and commands stay thin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flux2_cli.env import FLUX2_API_KEY
from flux2_cli.errors import AuthError
from flux2_cli.output import Output
from flux2_cli.providers import get_provider
from flux2_cli.providers.sandbox import SANDBOX_BASE_URL

if TYPE_CHECKING:
    import httpx

    from flux2_cli.client import HttpClient, HttpCore
    from flux2_cli.config import Settings
    from flux2_cli.ledger import Ledger
    from flux2_cli.providers.base import Provider

SANDBOX_KEY = "sandbox-key"
PREVIEW_KEY = "no-key-set"


def is_sandbox_url(url: str | None) -> bool:
    """True for URLs served by the embedded sandbox."""
    if not url:
        return False
    return urlsplit(url).netloc == urlsplit(SANDBOX_BASE_URL).netloc


@dataclass
class Context:
    """One command's view of the world."""

    settings: Settings
    output: Output
    sandbox: bool = False
    # Looked up when a Context is built, so tests can swap the module's clock.
    sleep: Callable[[float], None] = field(default_factory=lambda: time.sleep)
    clock: Callable[[], float] = field(default_factory=lambda: time.monotonic)
    # --base-url as given on the command line: it outranks the base URL a task was saved with.
    cli_base_url: str | None = None
    # The command line as given: the key for another provider's task is resolved from it.
    cli_values: Mapping[str, Any] = field(default_factory=dict)
    _keys: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    _clients: dict[tuple[str, str], HttpClient] = field(default_factory=dict)
    _core: HttpCore | None = None
    _ledger: Ledger | None = None

    def __post_init__(self) -> None:
        # The output scrubs the same keys the clients scrub at the source.
        self.secrets = self.output.secrets
        self.secrets.add(self.settings.api_key)

    @classmethod
    def create(
        cls,
        cli_values: Mapping[str, Any],
        *,
        json_mode: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        sandbox: bool = False,
    ) -> Context:
        """Resolve settings (flags > env > profile > file > defaults) and build the output."""
        from flux2_cli.config import resolve_settings

        output = Output(json_mode=json_mode, quiet=quiet, verbose=verbose)
        settings, warnings = resolve_settings(dict(cli_values))
        for warning in warnings:
            output.warn(warning)
        cli_base_url = cli_values.get("base_url")
        return cls(
            settings=settings,
            output=output,
            sandbox=sandbox,
            cli_base_url=settings.base_url if cli_base_url else None,
            cli_values=dict(cli_values),
        )

    # -- provider and endpoints -------------------------------------------------------------
    def provider(self, provider_id: str | None = None) -> Provider:
        """The translator for ``provider_id`` (default: the configured one)."""
        return get_provider(provider_id or self.settings.provider)

    def base_url(self, provider: Provider) -> str:
        """Where requests go: the sandbox, ``--base-url``, or the provider's own host."""
        if self.sandbox or provider.capabilities.id == "sandbox":
            return SANDBOX_BASE_URL
        return (self.settings.base_url or provider.capabilities.base_url).rstrip("/")

    def api_key(self, provider: Provider, base_url: str) -> str:
        """The key for ``provider``; AuthError (exit 3) before any request when there is none."""
        if is_sandbox_url(base_url) or not provider.capabilities.requires_key:
            # A real key never goes to the emulator; one given with --api-key does, so that
            # the sandbox's documented refused and broke keys can be tried.
            if self.settings.api_key and self.settings.api_key_source == "--api-key":
                return self.settings.api_key
            return SANDBOX_KEY
        key, _ = self._key_for(provider.capabilities.id)
        if key:
            return key
        own = provider.capabilities.env_var
        raise AuthError(
            f"No API key for {provider.capabilities.id}.",
            hints=[
                f"Set {FLUX2_API_KEY} (or {own}), or store it with: flux2 config set api_key -",
                "Or try flux2 without a key: --provider sandbox",
            ],
        )

    def _key_for(self, provider_id: str) -> tuple[str | None, str | None]:
        """The key for ``provider_id`` and where it came from.

        The settings' key was chosen for the configured provider; a task made with another
        ``--provider`` (``status``/``download``/``batch`` resume of a ledger task) gets the key
        that ``--provider ID`` would choose, so one provider's key never reaches another's host.
        """
        if provider_id == self.settings.provider:
            return self.settings.api_key, self.settings.api_key_source
        if provider_id not in self._keys:
            from flux2_cli.config import resolve_settings

            settings, _ = resolve_settings({**self.cli_values, "provider": provider_id})
            self.secrets.add(settings.api_key)
            self._keys[provider_id] = (settings.api_key, settings.api_key_source)
        return self._keys[provider_id]

    def http(self) -> HttpCore:
        """The one HTTP core of this command: one pool and TLS context for calls and downloads.

        The embedded sandbox is mounted for its own origin (built only when a request goes
        there), so a task saved with a sandbox URL is reached whatever the flags.
        """
        if self._core is None:
            from flux2_cli.client import HttpCore, LazyTransport

            self._core = HttpCore(
                mounts={SANDBOX_BASE_URL: LazyTransport(_sandbox_transport)},
                sleep=lambda seconds: self.sleep(seconds),
                clock=lambda: self.clock(),
                max_connections=max(10, self.settings.concurrency * 4),
            )
        return self._core

    def client(self, provider: Provider, base_url: str) -> HttpClient:
        """The API client for one provider and base URL (built once per command)."""
        key = (provider.capabilities.id, base_url)
        if key not in self._clients:
            from flux2_cli.client import HttpClient

            self._clients[key] = HttpClient(
                provider,
                base_url=base_url,
                api_key=self.api_key(provider, base_url),
                core=self.http(),
                log=self.output.debug if self.output.verbose else None,
                key_source=self._key_for(provider.capabilities.id)[1],
                secrets=self.secrets,
            )
        return self._clients[key]

    def preview_client(self, provider: Provider, base_url: str) -> HttpClient:
        """A client for ``--dry-run``, which prepares requests and never sends one: the key
        when there is one (it is redacted when shown), else a stand-in. The caller closes it."""
        from flux2_cli.client import HttpClient

        try:
            key = self.api_key(provider, base_url)
        except AuthError:
            key = PREVIEW_KEY
        return HttpClient(provider, base_url=base_url, api_key=key)

    def ledger(self) -> Ledger:
        """The task ledger (opened on first use)."""
        if self._ledger is None:
            from flux2_cli.ledger import Ledger

            self._ledger = Ledger()
        return self._ledger

    def close(self) -> None:
        """Close clients and the ledger."""
        self._clients.clear()
        if self._core is not None:
            self._core.close()
            self._core = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _sandbox_transport() -> httpx.BaseTransport:
    from flux2_cli.sandbox.embedded import transport

    return transport()
