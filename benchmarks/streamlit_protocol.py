"""A minimal Streamlit client that speaks the browser's own protocol, for load tests without a browser.

It opens the app's websocket (``/_stcore/stream``), sends the ``BackMsg`` reruns a browser sends (page
switches, widget values, button triggers, uploads through ``/_stcore/upload_file`` with the XSRF cookie) and
reads the ``ForwardMsg`` stream until each script run finishes, keeping the elements that run drew. It also
fetches the images a run shows, as a browser does. It renders nothing, so thirty sessions cost the client
almost no CPU, and the server's own capacity is what a load test measures.

    client = await StreamlitClient.connect("http://127.0.0.1:8501")
    await client.open()                               # the landing page
    await client.switch_page("Explore")               # by the title in the sidebar
    await client.upload(Path("a.png"))                # the page's first file uploader
    await client.click("Run")                         # a button, by its label
    client.shows("Predicted:")                        # text anywhere in what the last run drew
    client.last_run.first_seen("Maps ready")          # when that run first drew it
"""
from __future__ import annotations

import asyncio
import mimetypes
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

XSRF_COOKIE = "_streamlit_xsrf"
BROKEN = ("Something went wrong", "Traceback")


class ProtocolError(RuntimeError):
    """The server answered in a way a browser would show as broken (no such widget, a failed upload)."""


@dataclass
class Run:
    """What one script run drew: elements by their place on the page, and whether it has ended."""

    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: list[tuple[float, Element]] = field(default_factory=list)  # every element drawn, with its time

    def first_seen(self, text: str) -> float | None:
        """When (``time.monotonic()``) an element with ``text`` was first drawn in this run, even one replaced
        later (a preview that makes room for the full result)."""
        needle = text.encode()
        return next((at for at, element in self.arrivals if needle in element.SerializeToString()), None)


class StreamlitClient:
    """One browser session's worth of protocol: a websocket, its widget values and the current page."""

    def __init__(self, url: str, socket, cookie: str) -> None:
        self.url, self._socket, self._cookie = url, socket, cookie
        self.session_id = ""
        self.pages: dict[str, str] = {}  # page title -> page script hash
        self.page_hash = ""
        self.query = ""
        self._widgets: dict[str, WidgetState] = {}  # values this session set on the current page
        self._run = Run()
        self._file_urls: dict[str, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> StreamlitClient:
        """Open a session as a browser does: the health check (which sets the XSRF cookie), then the websocket."""
        cookie = await asyncio.to_thread(_xsrf_cookie, url)
        socket = await websockets.connect(
            url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit", cookie],
            origin=url, additional_headers={"Cookie": f"{XSRF_COOKIE}={cookie}"}, max_size=None)
        return cls(url, socket, cookie)

    async def close(self) -> None:
        self._reader.cancel()
        await self._socket.close()

    # what a user does

    async def open(self, path: str = "") -> Run:
        """Load the app at ``path`` (a page's address, optionally with ``?query``)."""
        page, _, self.query = path.partition("?")
        return await self._rerun(page_name=page)

    async def switch_page(self, title: str) -> Run:
        """Click a page in the sidebar (its address loses the old page's query)."""
        if title not in self.pages:
            raise ProtocolError(f"no page {title!r} in the navigation (pages: {', '.join(self.pages)})")
        self.page_hash, self.query = self.pages[title], ""
        self._widgets.clear()
        return await self._rerun()

    async def click(self, label: str) -> Run:
        """Press the button labelled ``label`` on the current page."""
        trigger = WidgetState(id=self._widget_id("button", label), trigger_value=True)
        return await self._rerun(extra=[trigger])

    async def upload(self, path: Path, name: str | None = None) -> Run:
        """Put ``path`` into the page's first file uploader, as dropping it there does (named ``name``, which a
        browser's file picker might refuse, when given)."""
        name = name or path.name
        widget = self._widget_id("file_uploader", None)
        request_id = uuid.uuid4().hex
        answer = self._file_urls[request_id] = asyncio.get_running_loop().create_future()
        message = BackMsg()
        message.file_urls_request.request_id = request_id
        message.file_urls_request.session_id = self.session_id
        message.file_urls_request.file_names.append(name)
        await self._socket.send(message.SerializeToString())
        try:
            file_urls = (await answer)[0]
        finally:
            del self._file_urls[request_id]
        await asyncio.to_thread(self._put, self.url + file_urls.upload_url, path, name)
        state = WidgetState(id=widget)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = file_urls.file_id, name, path.stat().st_size
        info.file_urls.CopyFrom(file_urls)
        self._widgets[widget] = state
        return await self._rerun()

    @property
    def last_run(self) -> Run:
        return self._run

    def shows(self, text: str) -> bool:
        """Whether ``text`` is anywhere in what the last run drew (markdown, captions, labels, chart specs)."""
        needle = text.encode()
        return any(needle in element.SerializeToString() for element in self._run.elements.values())

    def has_button(self, label: str) -> bool:
        """Whether the last run drew a button labelled ``label``."""
        return any(element.WhichOneof("type") == "button" and element.button.label == label
                   for element in self._run.elements.values())

    def broken(self) -> list[str]:
        """What a user would read as broken in the last run: an exception element or the app's guard text."""
        found = [f"exception: {e.exception.message}" for e in self._run.elements.values()
                 if e.WhichOneof("type") == "exception"]
        return found + [text for text in BROKEN if self.shows(text)]

    # protocol

    def _widget_id(self, kind: str, label: str | None) -> str:
        for element in self._run.elements.values():
            if element.WhichOneof("type") == kind:
                widget = getattr(element, kind)
                if label is None or widget.label == label:
                    return widget.id
        raise ProtocolError(f"no {kind} {label!r} on the page")

    async def _rerun(self, page_name: str = "", extra: list[WidgetState] = ()) -> Run:
        message = BackMsg()
        state = message.rerun_script
        state.query_string, state.page_script_hash, state.page_name = self.query, self.page_hash, page_name
        state.widget_states.widgets.extend([*self._widgets.values(), *extra])
        self._run = Run()
        await self._socket.send(message.SerializeToString())
        await self._run.finished.wait()
        await asyncio.to_thread(self._fetch_media, self._run)
        return self._run

    async def _read(self) -> None:
        async for data in self._socket:
            message = ForwardMsg()
            message.ParseFromString(data)
            kind = message.WhichOneof("type")
            if kind == "new_session":
                self.session_id = message.new_session.initialize.session_id or self.session_id
                self.page_hash = message.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.pages = {page.page_name: page.page_script_hash for page in message.navigation.app_pages}
                self.page_hash = message.navigation.page_script_hash or self.page_hash
            elif kind == "page_info_changed":
                self.query = message.page_info_changed.query_string
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                self._run.elements[tuple(message.metadata.delta_path)] = message.delta.new_element
                self._run.arrivals.append((time.monotonic(), message.delta.new_element))
            elif kind == "file_urls_response":
                future = self._file_urls.get(message.file_urls_response.response_id)
                if future is not None and not future.done():
                    future.set_result(list(message.file_urls_response.file_urls))
            elif kind == "script_finished" and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self._run.finished.set()

    def _put(self, url: str, path: Path, name: str) -> None:
        boundary = uuid.uuid4().hex
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: {kind}\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(url, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": self._cookie,
            "Cookie": f"{XSRF_COOKIE}={self._cookie}", "Origin": self.url})
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status not in (200, 204):
                raise ProtocolError(f"upload of {name} answered {response.status}")

    def _fetch_media(self, run: Run) -> None:
        for element in run.elements.values():
            if element.WhichOneof("type") == "imgs":
                for image in element.imgs.imgs:
                    if image.url.startswith("/"):
                        with urllib.request.urlopen(self.url + image.url, timeout=60) as response:
                            response.read()


def _xsrf_cookie(url: str) -> str:
    with urllib.request.urlopen(url + "/_stcore/health", timeout=60) as response:
        cookies = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    if XSRF_COOKIE not in cookies:
        raise ProtocolError(f"{url} set no {XSRF_COOKIE} cookie")
    return cookies[XSRF_COOKIE].value
