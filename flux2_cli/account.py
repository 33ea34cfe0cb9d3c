"""The account's balance: a provider's balance call sent through the one HTTP client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flux2_cli.errors import UsageError

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Balance, Provider


def fetch_balance(ctx: Context, provider: Provider) -> Balance:
    """The balance where the provider documents an endpoint; UsageError (exit 2) elsewhere.

    The refusal comes before the key is looked up: no key can make an endpoint exist.
    """
    call = provider.build_balance()
    provider_id = provider.capabilities.id
    if call is None:
        raise UsageError(
            f"{provider_id} offers no balance endpoint; see your balance on its dashboard.",
            hints=[
                "Balances are shown for: bfl (GET /v1/credits), and the sandbox "
                "(--provider sandbox)."
            ],
        )
    base_url = ctx.base_url(provider)
    body = ctx.client(provider, base_url).send(call)
    return provider.parse_balance(body)
