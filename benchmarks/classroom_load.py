"""A class on one server: start the app on loopback and drive N browser sessions through the tour at once.

Each session is a real browser context (headless Chromium through Playwright's async API, one browser, a small
viewport), or with ``--client protocol`` a client of Streamlit's own websocket protocol that sends what the
browser sends and renders nothing (``streamlit_protocol.py``: thirty browsers on this machine's two cores leave
the server a tenth of the CPU, so only this client measures the server itself). Each follows the teacher's tour
with page switches through the sidebar, so it stays one Streamlit session: landing page, Explore with a sample,
Explore with an upload of its own (a different Fashion-MNIST test image per session), Global context (the probe,
then a distance sweep), Compare with Integrated Gradients on the shared default (four Fashion-MNIST models), and
the effective receptive field's default. Sessions arrive spread over ``--ramp`` seconds. With ``--benchmarking``,
one more session opens Throughput and runs its benchmark (an exclusive job: it waits for every core) while the
others tour.

Prints p50 / p95 / max latency per action as the client saw it, errors and lost results (an expected result
that never appeared), the server's own queue and run time per job kind (from its scheduler's job log), its peak
resident memory and CPU time, and writes everything as JSON. Exits 1 on any error, lost result or server
traceback (CI runs it with three sessions as a smoke test).

    python benchmarks/classroom_load.py --sessions 30 --out benchmarks/classroom_load.json
    SBE_THREADS=1x2 python benchmarks/classroom_load.py --sessions 10   # another thread policy for the server
    python benchmarks/classroom_load.py --sessions 8 --benchmarking      # eight students, the teacher benchmarking
    python benchmarks/classroom_load.py --sessions 30 --client protocol  # thirty without thirty renderers

The browser runs on the same machine as the server and competes with it for the cores; the JSON records the
server's CPU time, so the rest of the wall time can be told apart.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.streamlit_protocol import BROKEN, StreamlitClient  # noqa: E402
from tools.screenshots import CHROMIUM, CHROMIUM_ARGS, free_port, start_server  # noqa: E402

FMNIST_TEST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
MAX_SESSIONS = 40
ACTIONS = ("landing", "explore sample", "explore upload", "global context", "sweep", "compare IG maps", "compare IG",
           "erf", "throughput")
RUNNING = '[data-testid="stStatusWidget"]'
SETTLED = (
    "() => !document.querySelector('[data-testid=\"stStatusWidget\"], [data-stale=\"true\"], "
    "[data-testid=\"stSkeleton\"], [data-testid=\"stSkeletonElement\"]')"
)


def upload_images(count: int, folder: Path) -> list[Path]:
    """``count`` different 28x28 PNGs: Fashion-MNIST test images 100, 101, ... (samples when the set is absent)."""
    paths = []
    if FMNIST_TEST.is_file():
        pixels = gzip.decompress(FMNIST_TEST.read_bytes())[16:]
        for index in range(count):
            start = (100 + index) * 784
            path = folder / f"upload_{index:02d}.png"
            Image.frombytes("L", (28, 28), pixels[start:start + 784]).save(path)
            paths.append(path)
        return paths
    samples = sorted((ROOT / "assets" / "samples").glob("fmnist_*.png"))
    for index in range(count):
        image = Image.open(samples[index % len(samples)]).rotate(90 * (index // len(samples)))
        path = folder / f"upload_{index:02d}.png"
        image.save(path)
        paths.append(path)
    return paths


class ServerWatch:
    """Samples the server process's resident memory every 0.2 s (found by its port on the command line)."""

    def __init__(self, port: int) -> None:
        self.port, self.peak_mb, self.pid = str(port), 0.0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _find(self) -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    arguments = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"streamlit" in b" ".join(arguments) and self.port.encode() in arguments:
                    return int(entry.name)
        return None

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, TypeError):
            pass
        return 0.0

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, TypeError, IndexError):
            return 0.0

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self.pid = self.pid or self._find()
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Step:
    """One thing a student does: ``kind`` is "open" (the app's address), "page" (a sidebar click), "upload"
    (the page's file input) or "click" (the button ``target``); ``expect`` is the text (or, with ``button``,
    the button) that shows it worked. A step that is not ``timed`` only leads to the next one, which is timed.
    ``early`` (action, text): a first result the step shows before its full one, timed apart (or with the full
    one when it never shows alone)."""

    action: str
    kind: str
    target: str
    expect: str
    button: bool = False
    timed: bool = True
    early: tuple[str, str] | None = None


TOUR = (
    Step("landing", "open", "", "What is spatial bias?"),
    Step("explore sample", "page", "Explore", "Predicted:"),
    Step("explore upload", "upload", "", "{upload}: 28x28"),
    Step("global context", "page", "Global context", "P(same)"),
    Step("sweep", "click", "Sweep distance", "plain reach:"),
    Step("compare IG", "page", "Compare attributions", "Run", button=True, timed=False),
    Step("compare IG", "click", "Run", "Attributing class", early=("compare IG maps", "Maps ready")),
    Step("erf", "page", "Effective receptive field", "Compute", button=True, timed=False),
    Step("erf", "click", "Compute", "Area ratios"),
)
BENCHMARK_TOUR = (  # the teacher, running the Throughput benchmark meanwhile
    TOUR[0],
    Step("throughput", "page", "Throughput", "Run benchmark", button=True, timed=False),
    Step("throughput", "click", "Run benchmark", "Against the paper"),
)


class LostResult(Exception):
    """The expected result of a step did not appear in time."""


class BrowserStudent:
    """A student in a real browser context (headless Chromium through Playwright)."""

    def __init__(self, browser, url: str, viewport: dict[str, int], timeout_s: float) -> None:
        self.browser, self.url, self.viewport, self.timeout_ms = browser, url, viewport, timeout_s * 1000

    async def __aenter__(self) -> BrowserStudent:
        self.context = await self.browser.new_context(viewport=self.viewport)
        self.page = await self.context.new_page()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.context.close()

    async def perform(self, step: Step, upload: Path | None) -> float | None:
        """Do ``step`` and wait for its result; returns when its ``early`` result showed (``time.monotonic()``)."""
        page = self.page
        try:
            if step.kind == "open":
                await page.goto(self.url, timeout=self.timeout_ms)
            elif step.kind == "page":
                await page.get_by_test_id("stSidebarNav").get_by_text(step.target, exact=True).click()
            elif step.kind == "upload":
                await page.locator("input[type=file]").first.set_input_files(upload)
            else:
                await page.get_by_role("button", name=step.target, exact=True).click()
            expect = step.expect.format(upload=upload.name if upload else "")
            shown = page.get_by_role("button", name=expect, exact=True) if step.button else page.get_by_text(expect)
            early = None
            if step.early:
                await page.get_by_text(step.early[1]).or_(shown).first.wait_for(timeout=self.timeout_ms)
                early = time.monotonic()
            await shown.first.wait_for(timeout=self.timeout_ms)
            await self._settle()
            return early
        except PlaywrightTimeoutError as error:
            raise LostResult from error

    async def broken(self) -> list[str]:
        body = await self.page.inner_text("body")
        return [text for text in BROKEN if text in body]

    async def _settle(self) -> None:
        """Wait for the rerun an action triggered to start (if it does within 2 s) and for the page to settle."""
        try:
            await self.page.wait_for_selector(RUNNING, timeout=2_000)
        except PlaywrightTimeoutError:
            pass
        await self.page.wait_for_function(SETTLED, timeout=self.timeout_ms)


class ProtocolStudent:
    """A student as Streamlit's websocket protocol sees one (``streamlit_protocol``): the same reruns, widget
    values and uploads as the browser sends, and no rendering."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s

    async def __aenter__(self) -> ProtocolStudent:
        self.client = await StreamlitClient.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def perform(self, step: Step, upload: Path | None) -> float | None:
        """Do ``step`` and check its result; returns when its ``early`` result was drawn (``time.monotonic()``)."""
        client = self.client
        doing = client.upload(upload) if step.kind == "upload" else (
            {"open": client.open, "page": client.switch_page, "click": client.click}[step.kind](step.target))
        try:
            await asyncio.wait_for(doing, self.timeout_s)
        except TimeoutError as error:
            raise LostResult from error
        expect = step.expect.format(upload=upload.name if upload else "")
        if not (client.has_button(expect) if step.button else client.shows(expect)):
            raise LostResult
        run = client.last_run
        return (run.first_seen(step.early[1]) or run.first_seen(expect)) if step.early else None

    async def broken(self) -> list[str]:
        return self.client.broken()


async def session(number: int, student, upload: Path | None, delay: float) -> dict:
    """One student's tour (or, without an upload, the teacher's benchmark); returns seconds per action and the
    errors met."""
    await asyncio.sleep(delay)
    times: dict[str, float] = {}
    errors: list[str] = []
    try:
        async with student:
            for step in TOUR if upload is not None else BENCHMARK_TOUR:
                started = time.monotonic()
                try:
                    early = await student.perform(step, upload)
                except LostResult:
                    errors.append(f"{step.action}: lost result ('{step.expect}' did not appear or the step did "
                                  "not finish in time)")
                    continue
                if step.timed:
                    times[step.action] = time.monotonic() - started
                if step.early and early is not None:
                    times[step.early[0]] = early - started
                errors.extend(f"{step.action}: {text}" for text in await student.broken())
    except Exception as error:  # noqa: BLE001 - one session's failure is counted, the others go on
        errors.append(f"session {number}: {type(error).__name__}: {str(error).splitlines()[0]}")
    return {"session": number, "seconds": times, "errors": errors}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summarise(results: list[dict]) -> dict[str, dict]:
    """p50 / p95 / max seconds and the number of completions per action."""
    summary = {}
    for action in ACTIONS:
        values = [r["seconds"][action] for r in results if action in r["seconds"]]
        summary[action] = {"completed": len(values), "p50_s": statistics.median(values) if values else None,
                           "p95_s": percentile(values, 0.95) if values else None, "max_s": max(values, default=None)}
    return summary


def summarise_jobs(jobs: list[dict]) -> dict[str, dict]:
    """Per job kind, as the server's scheduler logged them: count, p50 / p95 seconds queued and run."""
    summary = {}
    for kind in sorted({job["kind"] for job in jobs}):
        done = [job for job in jobs if job["kind"] == kind and job["state"] == "done"]
        queued, ran = [job["queued_s"] for job in done], [job["ran_s"] for job in done]
        summary[kind] = {"done": len(done), "other": sum(job["kind"] == kind for job in jobs) - len(done),
                         "queued_p50_s": statistics.median(queued) if done else None,
                         "queued_p95_s": percentile(queued, 0.95) if done else None,
                         "ran_p50_s": statistics.median(ran) if done else None,
                         "ran_p95_s": percentile(ran, 0.95) if done else None}
    return summary


async def drive(url: str, uploads: list[Path | None], ramp: float, timeout_s: float, viewport: dict[str, int],
                client: str) -> list[dict]:
    delays = [ramp * index / max(len(uploads) - 1, 1) for index in range(len(uploads))]

    async def tour(students: list) -> list[dict]:
        return list(await asyncio.gather(*(session(index, student, upload, delay) for index, (student, upload, delay)
                                           in enumerate(zip(students, uploads, delays)))))

    if client == "protocol":
        return await tour([ProtocolStudent(url, timeout_s) for _ in uploads])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results = await tour([BrowserStudent(browser, url, viewport, timeout_s) for _ in uploads])
        await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10, help=f"browser sessions, 1 to {MAX_SESSIONS}")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which sessions arrive")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one action may take before it counts as lost")
    parser.add_argument("--viewport", default="1000x700", help="browser viewport, WIDTHxHEIGHT")
    parser.add_argument("--client", choices=("browser", "protocol"), default="browser",
                        help="real browser contexts, or Streamlit's websocket protocol without a browser")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("--benchmarking", action="store_true",
                        help="one more session runs the Throughput page's benchmark while the others tour")
    args = parser.parse_args()
    if not 1 <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions must be 1 to {MAX_SESSIONS}")
    width, height = (int(v) for v in args.viewport.split("x"))
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        uploads: list[Path | None] = list(upload_images(args.sessions, folder))
        if args.benchmarking:
            uploads.insert(len(uploads) // 2, None)  # the benchmark starts amid the arrivals
        log = folder / "server.log"
        os.environ["SBE_JOB_LOG"] = str(folder / "jobs.jsonl")  # the server inherits it
        started = time.monotonic()
        with start_server(log, port=port) as url, ServerWatch(port) as watch:
            idle_mb = watch.rss_mb() if watch.pid else 0.0
            results = asyncio.run(drive(url, uploads, args.ramp, args.timeout, {"width": width, "height": height},
                                        args.client))
            wall = time.monotonic() - started
            server_cpu = watch.cpu_seconds()
            after_mb = watch.rss_mb()
        traceback = "Traceback" in log.read_text()
        job_log = folder / "jobs.jsonl"
        jobs = [json.loads(line) for line in job_log.read_text().splitlines()] if job_log.is_file() else []
    report = {
        "sessions": args.sessions, "benchmarking": args.benchmarking,
        "client": (f"Playwright (async) + Chromium, one browser, {len(uploads)} contexts, viewport {args.viewport}"
                   if args.client == "browser" else
                   f"Streamlit's websocket protocol (benchmarks/streamlit_protocol.py), {len(uploads)} sessions"),
        "threads_policy": os.environ.get("SBE_THREADS") or "default (one single-threaded worker per core)", "cpu": _cpu_name(), "cores": os.cpu_count(),
        "wall_s": round(wall, 1), "server_peak_rss_mb": round(watch.peak_mb), "server_rss_at_end_mb": round(after_mb),
        "server_rss_idle_mb": round(idle_mb), "server_cpu_s": round(server_cpu, 1),
        "errors": [e for r in results for e in r["errors"]], "server_traceback": traceback,
        "actions": summarise(results), "server_jobs": summarise_jobs(jobs), "per_session": results,
        "job_log": jobs,
    }
    _print(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if report["errors"] or report["server_traceback"]:
        sys.exit(1)  # a smoke test (CI runs --sessions 3) fails on any error or lost result


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _print(report: dict) -> None:
    print(f"{report['sessions']} sessions, {report['client']}; server threads: {report['threads_policy']}; "
          f"{report['cores']} x {report['cpu']}")
    print(f"{'action':<16} {'done':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for action, row in report["actions"].items():
        cells = [f"{row[k]:7.1f}" if row[k] is not None else "      -" for k in ("p50_s", "p95_s", "max_s")]
        print(f"{action:<16} {row['completed']:>5} {' '.join(cells)}")
    print(f"\n{'server job':<26} {'done':>5} {'queued p50':>11} {'p95':>6} {'ran p50':>8} {'p95':>6}")
    for kind, row in report["server_jobs"].items():
        cells = [f"{row[k]:.2f}" if row[k] is not None else "-" for k in ("queued_p50_s", "queued_p95_s", "ran_p50_s",
                                                                        "ran_p95_s")]
        print(f"{kind:<26} {row['done']:>5} {cells[0]:>11} {cells[1]:>6} {cells[2]:>8} {cells[3]:>6}")
    print(f"errors: {len(report['errors'])}" + "".join(f"\n  {e}" for e in report["errors"][:20]))
    print(f"server: peak RSS {report['server_peak_rss_mb']} MB (end {report['server_rss_at_end_mb']} MB), "
          f"CPU {report['server_cpu_s']} s; wall {report['wall_s']} s; traceback in log: {report['server_traceback']}")


if __name__ == "__main__":
    main()
