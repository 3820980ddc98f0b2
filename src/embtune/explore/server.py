"""The `embtune explore` HTTP server: standard library only, bound to 127.0.0.1 unless told otherwise, and every
request must carry the per-run token (``?token=`` in the page's URL, the ``X-Embtune-Token`` header on API calls);
anything else gets 403. The page and plotly.js (vendored in static/vendor/, no CDN) are served from disk; selections
happen in the browser (WebGL scatter), so only actions (label, undo, export, ...) reach Python.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from embtune.errors import EmbtuneError

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def plotly_js() -> Path:
    """plotly.js's gl2d bundle (scattergl with lasso / box selection; MIT), vendored in static/vendor/ (update.sh
    re-vendors it): a third of the full plotly.min.js, which is what the page's first render waits for."""
    path = STATIC / "vendor" / "plotly-gl2d.min.js"
    if not path.is_file():
        raise EmbtuneError(f"{path}: missing from this embtune install; reinstall embtune")
    return path


class ExploreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, session, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.session, self.token = session, token or secrets.token_urlsafe(18)
        self.lock = threading.Lock()  # one action at a time: the label log is appended in order
        self.plotly = plotly_js()
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/?token={self.token}"


class Handler(BaseHTTPRequestHandler):
    server: ExploreServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("explore: " + format, *args)

    def _authorised(self, query: dict) -> bool:
        given = self.headers.get("X-Embtune-Token") or (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.server.token.encode())

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            return self._send(HTTPStatus.FORBIDDEN, b"forbidden: open the URL embtune explore printed (it has the token)",
                              "text/plain")
        session = self.server.session
        routes = {
            "/": lambda: self._send(200, (STATIC / "explore.html").read_bytes().replace(
                b"__TOKEN__", self.server.token.encode()), "text/html; charset=utf-8"),
            "/explore.js": lambda: self._send(200, (STATIC / "explore.js").read_bytes(), "text/javascript"),
            "/plotly.js": lambda: self._send(200, self.server.plotly.read_bytes(), "text/javascript",
                                                 {"Cache-Control": "max-age=3600"}),
            "/api/points": lambda: self._json(session.points()),
            "/api/clusters": lambda: self._json(session.clusters()),
            "/api/propagation": lambda: self._json(session.propagation()),
            "/api/queue": lambda: self._json(session.queue()),
            "/api/suspects": lambda: self._json(session.suspects()),
            "/api/search": lambda: self._json(session.search((query.get("q") or [""])[0])),
        }
        if url.path == "/api/export":
            with self.server.lock:
                fmt = (query.get("format") or ["jsonl"])[0]
                content, path = session.export(fmt)
            return self._send(200, content.encode(), "text/csv" if fmt == "csv" else "application/x-ndjson",
                              {"Content-Disposition": f'attachment; filename="{path.name}"'})
        if url.path == "/api/thumb":  # an image corpus's thumbnail (the page asks for the ones it shows)
            try:
                data = session.thumbnail(int((query.get("id") or ["-1"])[0]))
            except (EmbtuneError, ValueError) as e:
                return self._json({"error": str(e)}, 404)
            return self._send(200, data, "image/jpeg", {"Cache-Control": "private, max-age=3600"})
        if url.path not in routes:
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        try:
            routes[url.path]()
        except EmbtuneError as e:
            self._json({"error": str(e)}, 400)

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        if not self._authorised(parse_qs(url.query)):
            return self._send(HTTPStatus.FORBIDDEN, b"forbidden", "text/plain")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        except ValueError:
            return self._json({"error": "the request body is not JSON"}, 400)
        session = self.server.session
        actions = {
            "/api/texts": lambda: session.texts_of(body.get("items", []), resample=bool(body.get("resample"))),
            "/api/label": lambda: session.label(body.get("items", []), str(body.get("label", "")), body.get("left_out")),
            "/api/unlabel": lambda: session.unlabel(body.get("items", [])),
            "/api/accept": lambda: session.accept(float(body.get("threshold", 0.9))),
            "/api/undo": session.undo,
            "/api/redo": session.redo,
            "/api/retune": lambda: {**session.retune(), **session.points()},
        }
        if url.path not in actions:
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        try:
            with self.server.lock:
                result = actions[url.path]()
        except (EmbtuneError, ValueError) as e:
            return self._json({"error": str(e)}, 400)
        self._json(result)


def serve(session, *, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False, say=print) -> None:
    """Serve ``session`` until Ctrl-C (or SIGTERM); every label was fsync'd as it was applied, so stopping loses
    nothing."""
    import signal
    import webbrowser

    say(f"working out suggested groups of the {len(session.texts):,} {session.unit} ...")
    say(f"  ready in {session.prepare():.1f} s")
    try:
        server = ExploreServer(session, host, port)
    except OSError as e:
        raise EmbtuneError(f"explore: cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("explore: listening on %s: anyone who can reach this machine and has the URL can label", host)
    say(f"embtune explore: {server.url}")
    say(f"labels are saved as you go in {session.log.path}; Ctrl-C stops the server")
    if open_browser:
        webbrowser.open(server.url)
    previous = signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        say(f"embtune explore stopped; {len(session.log.labels())} items labelled ({session.log.path})")
