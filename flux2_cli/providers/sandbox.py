"""The offline sandbox, spoken in the API in One dialect: no key, no network."""

from __future__ import annotations

from dataclasses import replace

from flux2_cli.providers.apiinone import CAPABILITIES as APIINONE_CAPABILITIES
from flux2_cli.providers.apiinone import ApiInOneProvider
from flux2_cli.providers.base import HttpCall
from flux2_cli.request import GenerationRequest

SANDBOX_BASE_URL = "http://sandbox.flux2.invalid"
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
    takes_seed=True,
    requires_key=False,
    prices=APIINONE_CAPABILITIES.prices + " (simulated; nothing is charged)",
)


class SandboxProvider(ApiInOneProvider):
    """API in One's wire format against the embedded emulator; ``--seed`` is honoured."""

    capabilities = CAPABILITIES
    balance_path = BALANCE_PATH
    usd_per_credit = USD_PER_CREDIT

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """As API in One, plus the seed, which the sandbox uses to draw the picture."""
        call = super().build_create(request)
        if request.seed is not None and call.json is not None:
            call.json.setdefault("seed", request.seed)
        return call
