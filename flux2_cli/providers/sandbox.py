"""The offline sandbox, spoken in the API in One dialect: no key, no network."""

from __future__ import annotations

from dataclasses import replace

from flux2_cli.providers.apiinone import CAPABILITIES as APIINONE_CAPABILITIES
from flux2_cli.providers.apiinone import ApiInOneProvider
from flux2_cli.task import SANDBOX_BASE_URL

__all__ = ["BALANCE_PATH", "CAPABILITIES", "SANDBOX_BASE_URL", "SandboxProvider"]

# The sandbox's own balance endpoint: API in One, whose dialect it speaks, documents none.
BALANCE_PATH = "/sandbox/v1/credits"
USD_PER_CREDIT = 0.01  # API in One's "1 credit ≈ $0.01"

CAPABILITIES = replace(
    APIINONE_CAPABILITIES,
    id="sandbox",
    name="Offline sandbox (API in One dialect)",
    base_url=SANDBOX_BASE_URL,
    env_var="FLUX2_API_KEY",
    docs_url="README.md#the-sandbox",
    # It takes exactly what API in One takes (no --seed): a pipeline rehearsed here must not
    # fail live on an option the real provider refuses.
    requires_key=False,
    prices=APIINONE_CAPABILITIES.prices + " (simulated; nothing is charged)",
)


class SandboxProvider(ApiInOneProvider):
    """API in One's wire format, capabilities and refusals, against the embedded emulator."""

    capabilities = CAPABILITIES
    balance_path = BALANCE_PATH
    usd_per_credit = USD_PER_CREDIT
