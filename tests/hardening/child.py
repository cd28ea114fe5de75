"""Runs a group of bad-input cases in one fresh Python process and reports each as a JSON line.

    python tests/hardening/child.py < cases.json

Each case is ``[kind, argument]``: ``cli`` (an argv for ``sbcore.cli.main``), ``checkpoint``
(a path for ``sbcore.load_checkpoint``), ``image`` (a path for ``load_image`` then
``model_view``), ``app`` (a path uploaded on the Explore page through AppTest, one session
for all such cases) or ``link`` (``{"page", "query", "click", "read"}``: a page opened in a new AppTest session
with those URL parameters, then the button keyed ``click`` pressed when given; the widget values keyed in
``read`` are reported). Each report carries the exit
status, what reached stderr, any uncaught exception as a traceback, and the process's peak
resident memory during that case alone (the high-water mark is reset through
/proc/self/clear_refs before each case).
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's sbcore and app, whatever is installed


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_kb() -> int:
    """VmHWM of this process in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cli(argv: list[str]) -> dict[str, Any]:
    from sbcore.cli import main

    try:
        return {"status": main(argv)}
    except SystemExit as exit_:
        return {"status": exit_.code}


def _checkpoint(path: str) -> dict[str, Any]:
    import sbcore

    try:
        sbcore.load_checkpoint(path)
    except sbcore.CheckpointError as error:
        return {"status": 2, "message": str(error)}
    return {"status": 0}


def _image(path: str) -> dict[str, Any]:
    from sbcore.images import ImageError, load_image, model_view
    from sbcore.models.metadata import Preprocessing

    try:
        image = load_image(path)
        model_view(image, Preprocessing())
    except ImageError as error:
        return {"status": 2, "message": str(error)}
    return {"status": 0, "size": list(image.size)}


_SESSION: list = []


def _app(path: str) -> dict[str, Any]:
    """Upload ``path`` on the Explore page of one AppTest session shared by the group."""
    if not _SESSION:
        import torch
        from streamlit.testing.v1 import AppTest

        torch.set_num_threads(1)
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=180).run()
        _SESSION.append(at.switch_page("views/explore.py").run())  # the app opens on its landing page
    at = _SESSION[0]
    at.file_uploader(key="explore_upload").set_value((Path(path).name, Path(path).read_bytes(), "image/png")).run()
    report = {"errors": [e.value for e in at.error], "exceptions": [e.value for e in at.exception]}
    at.file_uploader(key="explore_upload").set_value(None).run()  # the page must recover for the next case
    report["recovered"] = not at.exception and not at.error
    return report


def _link(request: dict[str, Any]) -> dict[str, Any]:
    """Open ``request["page"]`` with URL parameters ``request["query"]`` in a fresh AppTest session (then press
    the button ``request["click"]``, if any); reports errors, exceptions, toasts, subheaders and widget values."""
    import torch
    from streamlit.testing.v1 import AppTest

    torch.set_num_threads(1)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600).run()
    at.switch_page(f"views/{request['page']}.py")
    at.query_params = request["query"]
    at.run()
    if request.get("click"):
        at.button(key=request["click"]).click().run()
    return {"errors": [e.value for e in at.error], "exceptions": [e.value for e in at.exception],
            "toasts": [t.value for t in at.toast], "headers": [h.value for h in at.subheader],
            "values": {key: at.session_state[key] for key in request.get("read", []) if key in at.session_state}}


RUNNERS: dict[str, Callable[[Any], dict[str, Any]]] = {"cli": _cli, "checkpoint": _checkpoint, "image": _image, "app": _app,
                                                       "link": _link}


def main() -> None:
    for kind, argument in json.load(sys.stdin):
        _reset_peak()
        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                report = RUNNERS[kind](argument)
            except BaseException:  # anything escaping is exactly what the suite looks for
                report = {"status": None, "traceback": traceback.format_exc()}
        report.update(stderr=stderr.getvalue(), peak_kb=peak_kb())
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
