"""Shared option aliases: each common flag declared once."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flux2_cli.request import FORMATS, MODES, RATIOS

ACCOUNT = "Account and endpoint"
OUTPUT_PANEL = "Output"


def _complete(values: tuple[str, ...]) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [value for value in values if value.startswith(incomplete)]

    return complete


def _complete_provider(incomplete: str) -> list[str]:
    from flux2_cli.providers import provider_ids

    return [value for value in provider_ids() if value.startswith(incomplete)]


def _complete_profile(incomplete: str) -> list[str]:
    from flux2_cli.completers import profile_names

    return profile_names(incomplete)


ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        metavar="ID",
        help="API to use: apiinone, apimart, vtrix, bfl, sandbox.",
        autocompletion=_complete_provider,
        rich_help_panel=ACCOUNT,
        show_default=False,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        metavar="URL",
        help="Override the provider's base URL.",
        rich_help_panel=ACCOUNT,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help="API key (prefer FLUX2_API_KEY or `flux2 config set api_key -`).",
        rich_help_panel=ACCOUNT,
        show_default=False,
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAME",
        help="Config profile to use.",
        rich_help_panel=ACCOUNT,
        autocompletion=_complete_profile,
    ),
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        metavar="",
        help="Run against the offline sandbox (no key, no network).",
        rich_help_panel=ACCOUNT,
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        metavar="REGION",
        help="Regional host where the provider has them (bfl: eu, us).",
        rich_help_panel=ACCOUNT,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", metavar="", help="Machine output on stdout.", rich_help_panel=OUTPUT_PANEL
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        metavar="",
        help="Nothing on stderr but errors.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        metavar="",
        help="Log HTTP requests and responses to stderr (keys redacted).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Folder (existing or ending in /), file name, or - for stdout.",
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
    ),
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        metavar="TEMPLATE",
        help="File name template: {slug} {task_id} {id8} {n} {ext} {date} {time} {seed} "
        "{ratio} {res} {mode}.",
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", metavar="", help="Replace an existing file.", rich_help_panel=OUTPUT_PANEL
    ),
]
NoSidecarOpt = Annotated[
    bool,
    typer.Option(
        "--no-sidecar",
        metavar="",
        help="Skip the metadata sidecar (.json).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
EmbedOpt = Annotated[
    bool,
    typer.Option(
        "--embed-metadata",
        metavar="",
        help="Also write the parameters into the image (PNG text, JPEG comment).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds to wait for the task (default 600, or config).",
        show_default=False,
        metavar="SECONDS",
    ),
]
RatioOpt = Annotated[
    str | None,
    typer.Option(
        "--ratio",
        "-r",
        help=f"Aspect ratio: {' '.join(RATIOS)} (default 1:1, or config).",
        metavar="RATIO",
        autocompletion=_complete(RATIOS),
        show_default=False,
    ),
]
ResOpt = Annotated[
    str | None,
    typer.Option(
        "--res",
        help="Resolution: 1K or 2K (default 1K, or config).",
        metavar="RES",
        autocompletion=_complete(("1K", "2K")),
        show_default=False,
    ),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        "-m",
        help="pro or flex (default pro, or config).",
        metavar="MODE",
        autocompletion=_complete(MODES),
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="png, jpeg or webp, as the provider allows.",
        metavar="FORMAT",
        autocompletion=_complete(FORMATS),
        show_default=False,
    ),
]
NoUpsampleOpt = Annotated[
    bool,
    typer.Option(
        "--no-upsample",
        metavar="",
        help="Generate from the prompt exactly as written: turn off the prompt rewriting the "
        "provider does by default (bfl: disable_pup for pro/max, prompt_upsampling=false for "
        "flex).",
        rich_help_panel="Request",
    ),
]


def _complete_task_id(incomplete: str) -> list[tuple[str, str]]:
    from flux2_cli.completers import task_ids

    return task_ids(incomplete)


TaskIdsArg = Annotated[
    list[str],
    typer.Argument(
        help="Task ids: a whole id, a unique prefix or short id (6+ characters), or `last`.",
        metavar="TASK_ID",
        autocompletion=_complete_task_id,
        show_default=False,
    ),
]
TaskIdsOptArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Task ids: a whole id, a unique prefix or short id (6+ characters), or `last`.",
        metavar="TASK_ID",
        autocompletion=_complete_task_id,
        show_default=False,
    ),
]
OpenOpt = Annotated[
    bool | None,
    typer.Option(
        "--open/--no-open",
        metavar="",
        help="Open the saved images in the system viewer (only on a terminal, never under CI; "
        "default: config open).",
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
    ),
]
PreviewOpt = Annotated[
    bool | None,
    typer.Option(
        "--preview/--no-preview",
        metavar="",
        help="Draw the saved images in the terminal: kitty, iTerm2, sixel, else half-blocks "
        "(only on a terminal, never under CI; default: config preview).",
        rich_help_panel=OUTPUT_PANEL,
        show_default=False,
    ),
]

# batch's --format takes the images' format and the manifest's (for `batch -`).
BATCH_FORMATS: tuple[str, ...] = (*FORMATS, "jsonl", "json", "csv", "tsv", "txt")
complete_batch_format = _complete(BATCH_FORMATS)
