"""One student on a server of their own: the classroom tour through Streamlit's protocol, twice, against any
checkout of the app started with its own settings (its ``.streamlit/config.toml``), to compare versions.

    python benchmarks/one_session.py                      # this checkout
    git worktree add /tmp/before 6f9c91d && python benchmarks/one_session.py --app /tmp/before

Prints the seconds per action of a first session on a fresh server and of a second session (another upload)
on the same server, as ``classroom_load.py --client protocol`` times them.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.classroom_load import ProtocolStudent, session, upload_images  # noqa: E402
from tools.screenshots import free_port, wait_healthy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=ROOT, help="a checkout of this project (default: this one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one action may take")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "server.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen(  # started as a user starts it, from the checkout, with its own config
                [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                 "--server.port", str(port), "--server.address", "127.0.0.1"],
                cwd=args.app, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_healthy(url, server, log_path, timeout=120)
                for number, upload in enumerate(upload_images(2, Path(folder))):
                    result = asyncio.run(session(number, ProtocolStudent(url, args.timeout), upload, 0.0))
                    times = "  ".join(f"{action} {seconds:.2f}" for action, seconds in result["seconds"].items())
                    print(f"{'first' if number == 0 else 'second'} session: {times}")
                    for error in result["errors"]:
                        print(f"  error: {error}")
            finally:
                server.terminate()
                server.wait(timeout=30)


if __name__ == "__main__":
    main()
