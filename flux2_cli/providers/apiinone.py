"""API in One (apiin.one): ``model: flux-2`` with ``type``, ``aspect_ratio`` and ``resolution``."""

from __future__ import annotations

from typing import Any

from flux2_cli.providers.base import BaseProvider, Capabilities, HttpCall
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Cost

PRICE_CREDITS: dict[tuple[str, str], int] = {
    ("pro", "1K"): 5,
    ("pro", "2K"): 7,
    ("flex", "1K"): 14,
    ("flex", "2K"): 24,
}
USD_PER_CREDIT = 0.01

CAPABILITIES = Capabilities(
    id="apiinone",
    name="API in One",
    base_url="https://apiin.one",
    env_var="APIINONE_API_KEY",
    docs_url="https://apiin.one/docs",
    models={"pro": "flux-2", "flex": "flux-2"},
    takes_callback=True,
    prices="credits per image (1 credit ≈ $0.01): pro 1K 5, pro 2K 7, flex 1K 14, flex 2K 24",
)


class ApiInOneProvider(BaseProvider):
    """Translator for API in One's ``/api/v1/images/generations`` and ``/api/v1/tasks/{id}``."""

    capabilities = CAPABILITIES
    create_path = "/api/v1/images/generations"
    poll_path = "/api/v1/tasks/{id}"

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """The documented body; nothing the user did not set is sent."""
        body: dict[str, Any] = {
            "model": self.model_for(request),
            "prompt": request.prompt,
            "aspect_ratio": request.ratio,
            "resolution": request.res,
            "type": request.mode,
        }
        if request.refs:
            body["input_urls"] = list(request.refs)
        if request.callback_url:
            body["callback_url"] = request.callback_url
        body.update(request.params)
        return HttpCall("POST", self.create_path, json=body, paid=True)

    def estimate_cost(self, request: GenerationRequest) -> Cost | None:
        """The published price table (the API reports no cost)."""
        credits = PRICE_CREDITS.get((request.mode, request.res))
        if credits is None:
            return None
        return Cost(credits=credits, usd=round(credits * USD_PER_CREDIT, 4))
