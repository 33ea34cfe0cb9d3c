#!/usr/bin/env python3
"""Download throughput of flux2's download path vs curl, and its added peak memory, on 50 MB.

Run from the repository root: ``.venv/bin/python benchmarks/download.py``. A local HTTP server
(its own process, 127.0.0.1, stdlib) serves a ~50 MB PNG of random noise (4096×4096 RGB,
stored uncompressed, so it is a valid image of that size). Each round downloads it once with
``curl -o`` and once with ``flux2_cli.download.download_images`` (the code `flux2 download` and
`flux2 gen` run) in a fresh process, alternating; the figures are medians over ``--runs``.
Peak memory: that process's peak RSS during the download (VmHWM, reset just before) minus its
RSS just before it (httpx and Pillow already imported), i.e. what the 50 MB download adds.
Linux only (/proc).
(The sandbox renders smooth gradients that compress to a few MB, hence the local server.)
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDE = 4096
ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: argv = url, output folder. Prints one JSON line. Memory comes
# from /proc/self/status: VmHWM (peak RSS) is reset by writing 5 to /proc/self/clear_refs, so
# the peak is the download's alone (ru_maxrss would carry the parent's peak across exec).
CLIENT = """
import json, sys, time
import httpx, PIL.Image  # the baseline includes what the download path imports
from flux2_cli.download import DownloadOptions, download_images
from flux2_cli.task import ImageResult, Task, TaskStatus

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

url, folder = sys.argv[1], sys.argv[2]
task = Task(task_id="bench-0001", provider="sandbox", status=TaskStatus.SUCCEEDED,
            images=(ImageResult(url=url),))
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status_kib("VmRSS")
start = time.perf_counter()
done = download_images(task, DownloadOptions(output=folder + "/", overwrite=True, sidecar=False))
seconds = time.perf_counter() - start
after = status_kib("VmHWM")
print(json.dumps({"seconds": seconds, "before_kib": before, "after_kib": after,
                  "bytes": done.images[0].bytes}))
"""


def make_png(path: Path) -> None:
    """Write a SIDE×SIDE noise PNG with no compression (in a child: keeps our RSS small)."""
    from PIL import Image

    image = Image.frombytes("RGB", (SIDE, SIDE), os.urandom(SIDE * SIDE * 3))
    image.save(path, format="PNG", compress_level=0)


def serve(path: str, port_queue: multiprocessing.Queue[int]) -> None:
    """Serve the file at /image.png (its own process, so its memory is not counted)."""
    data = Path(path).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            view = memoryview(data)
            for offset in range(0, len(data), 1 << 20):
                self.wfile.write(view[offset : offset + (1 << 20)])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> int:
    """Measure and print a Markdown table; optionally save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        parser.error("curl is not on PATH")

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp, "image.png")
        maker = multiprocessing.Process(target=make_png, args=(image,))
        maker.start()
        maker.join()
        size = image.stat().st_size
        ports: multiprocessing.Queue[int] = multiprocessing.Queue()
        server = multiprocessing.Process(target=serve, args=(str(image), ports), daemon=True)
        server.start()
        try:
            url = f"http://127.0.0.1:{ports.get(timeout=30)}/image.png"
            curl_s, flux2_s, added_kib, peaks_kib = [], [], [], []
            for _ in range(args.runs + 1):  # the first round warms the page cache
                start = time.perf_counter()
                subprocess.run(
                    ["curl", "-s", "-f", "-o", str(Path(tmp, "curl.png")), url], check=True
                )
                curl_s.append(time.perf_counter() - start)
                out = subprocess.run(
                    [sys.executable, "-c", CLIENT, url, str(Path(tmp, "flux2"))],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                ).stdout
                result = json.loads(out)
                assert result["bytes"] == size, result
                flux2_s.append(result["seconds"])
                added_kib.append(result["after_kib"] - result["before_kib"])
                peaks_kib.append(result["after_kib"])
        finally:
            server.terminate()
            server.join()

    curl_t, flux2_t = statistics.median(curl_s[1:]), statistics.median(flux2_s[1:])
    added_mb = statistics.median(added_kib[1:]) * 1024 / 1e6
    figures = {
        "image_bytes": size,
        "runs": args.runs,
        "curl_seconds": curl_t,
        "flux2_seconds": flux2_t,
        "curl_mb_per_s": size / curl_t / 1e6,
        "flux2_mb_per_s": size / flux2_t / 1e6,
        "throughput_ratio": curl_t / flux2_t,
        "added_peak_mb": added_mb,
        "peak_rss_mb": statistics.median(peaks_kib[1:]) * 1024 / 1e6,
    }
    python = sys.version.split()[0]
    print(f"image: {size / 1e6:.1f} MB PNG, {args.runs} runs (medians), python {python}\n")
    print("| measure | value | goal |")
    print("| --- | ---: | --- |")
    print(f"| curl -o | {figures['curl_mb_per_s']:.0f} MB/s ({curl_t:.3f} s) | |")
    print(f"| flux2 download path | {figures['flux2_mb_per_s']:.0f} MB/s ({flux2_t:.3f} s) | |")
    ratio = figures["throughput_ratio"]
    print(f"| throughput vs curl | {ratio:.2f}× | ≥ 0.35× {'met' if ratio >= 0.35 else 'missed'} |")
    verdict = "met" if added_mb < 10 else "missed"
    print(f"| peak memory added by the download | {added_mb:.1f} MB | < 10 MB {verdict} |")
    print(f"| peak RSS of that process | {figures['peak_rss_mb']:.1f} MB | |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
