"""The offline sandbox: an emulator of the four providers' HTTP APIs, embedded or served.

One Starlette application (:func:`flux2_cli.sandbox.app.create_app`) answers the apiinone,
apimart, vtrix and bfl paths at a single base URL, with each dialect's auth header, answer
shapes, status words and error answers. Tasks go queued → running → done over a configurable
latency, computed from their creation time on disk, so any process sees the same state. Images
are real PNG/JPEG/WebP files of the exact requested size, drawn deterministically from the
prompt and seed; their URLs expire (403 XML ``AccessDenied``) after a TTL. Each key has a
credit balance charged by API in One's price table (bfl by BFL's own formula). Webhooks are
called when tasks end. Faults are injected by rate, by count or by markers in the prompt
(table in :mod:`.faults`).

Modules:

- ``settings``  SandboxSettings (latency, TTLs, credits, faults, clock) and the documented keys
- ``app``       the ASGI application and its routes
- ``dialects``  reading create bodies and writing answers, per provider
- ``tasks``     the task record, its phase at a given time, its price
- ``state``     tasks, images, balances on disk, with a file lock (cross-process)
- ``images``    the Pillow drawing
- ``faults``    fault settings, the injector and the prompt markers
- ``webhooks``  delivery with retries, and the scanner thread of ``serve``
- ``embedded``  a sync httpx transport running the app in-process (``--provider sandbox``)
- ``server``    ``flux2 sandbox serve`` with uvicorn

Documented keys: any non-empty key is accepted; ``sandbox-invalid-key`` is refused (401 in
every dialect); ``sandbox-broke-key`` starts with 0 credits (402, vtrix 403).

Nothing outside this package imports it at start-up; heavy imports (Starlette, Pillow, httpx,
uvicorn) happen only when the sandbox is used.
"""

from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY, SandboxSettings

__all__ = ["BROKE_KEY", "INVALID_KEY", "SandboxSettings"]
