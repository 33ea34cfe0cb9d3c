"""Provider registry: id -> translator class, imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from flux2_cli.errors import UsageError

if TYPE_CHECKING:
    from flux2_cli.providers.base import Provider

# One line per provider: a new API is one new module and one line here.
REGISTRY: dict[str, str] = {
    "apiinone": "flux2_cli.providers.apiinone:ApiInOneProvider",
    "apimart": "flux2_cli.providers.apimart:ApiMartProvider",
    "vtrix": "flux2_cli.providers.vtrix:VtrixProvider",
    "bfl": "flux2_cli.providers.bfl:BflProvider",
    "sandbox": "flux2_cli.providers.sandbox:SandboxProvider",
}

DEFAULT_PROVIDER = "apiinone"


def provider_ids() -> list[str]:
    """Every registered provider id, in registry order."""
    return list(REGISTRY)


def get_provider(provider_id: str) -> Provider:
    """An instance of the translator for ``provider_id``; UsageError naming the choices."""
    target = REGISTRY.get(provider_id.strip().lower())
    if target is None:
        raise UsageError(f"Unknown provider {provider_id!r}; choose one of {', '.join(REGISTRY)}.")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls()
    return provider
