"""``flux2 credits``: the account balance, where the provider documents an endpoint for it."""

from __future__ import annotations

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RegionOpt,
    SandboxOpt,
    VerboseOpt,
)


def credits(
    provider: ProviderOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    sandbox: SandboxOpt = False,
) -> None:
    """Show the account balance (bfl; the sandbox per key); exit 2 where there is no endpoint."""
    from flux2_cli.account import fetch_balance
    from flux2_cli.commands._common import make_context

    ctx = make_context(
        provider=provider,
        base_url=base_url,
        api_key=api_key,
        profile=profile,
        region=region,
        sandbox=sandbox,
        json_mode=json_output,
        quiet=quiet,
        verbose=verbose,
    )
    try:
        chosen = ctx.provider()
        balance = fetch_balance(ctx, chosen)
        simulated = ctx.sandbox or chosen.capabilities.id == "sandbox"
        output = ctx.output
        if output.json_mode:
            output.document({**balance.to_json(), "sandbox": simulated})
            return
        line = f"{balance.provider}: {balance.credits:,.2f}".rstrip("0").rstrip(".") + " credits"
        if balance.usd is not None:
            line += f" (≈ ${balance.usd:,.2f})"
        if simulated:
            line += " [sandbox: simulated, nothing is charged]"
        output.result(line)
    finally:
        ctx.close()
