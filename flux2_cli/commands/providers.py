"""``flux2 providers``: what each API takes, its models, sizes and prices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flux2_cli.commands._options import JsonOpt

if TYPE_CHECKING:
    from flux2_cli.providers.base import Capabilities


def providers(json_output: JsonOpt = False) -> None:
    """List the providers: base URL, models, modes, sizes, options taken, prices."""
    from flux2_cli.output import Output, print_records
    from flux2_cli.providers import get_provider, provider_ids

    output = Output(json_mode=json_output)
    caps = [get_provider(provider_id).capabilities for provider_id in provider_ids()]
    if json_output:
        output.document([cap.to_json() for cap in caps])
        return
    rows = []
    for cap in caps:
        options = [
            name
            for name, taken in (
                ("--seed", cap.takes_seed),
                ("--width/--height", cap.size_rule is not None),
                ("--format", bool(cap.formats)),
                ("--safety", cap.safety_range is not None),
                ("--callback-url", cap.takes_callback),
                ("local --ref", cap.inline_refs),
            )
            if taken
        ]
        models = ", ".join(
            _model_text(cap, model)
            for model in dict.fromkeys([*cap.models.values(), *cap.extra_models])
        )
        size = cap.size_rule.describe() if cap.size_rule else "ratio + 1K/2K"
        rows.append(
            [
                cap.id,
                cap.base_url,
                models,
                "/".join(cap.modes),
                size,
                " ".join(options) or "-",
                cap.prices,
            ]
        )
    # A block per provider on a terminal (a table split URLs and prices mid-token), tab-separated
    # rows when piped.
    print_records(
        output, ["id", "base URL", "models", "modes", "sizes", "also takes", "prices"], rows
    )


def _model_text(cap: Capabilities, model: str) -> str:
    """A model id, with its own limits and price where the provider lists them (BFL)."""
    spec = cap.spec_for(model)
    if spec is None:
        return model
    details = spec.to_json(cap)
    facts = [f"{details['max_refs']} refs", "/".join(details["formats"])]
    if details["price"]:
        facts.append(f"{details['price']} ¢")
    if details["no_upsample"]:
        facts.append("--no-upsample")
    if details["note"]:
        facts.append(details["note"])
    return f"{model} ({'; '.join(facts)})"
