"""TinyFish as it began: a Flask app.

The same routes and the same bytes as the Rust app (crates/app/src/routes.rs), as far as
Flask allows:

| route      | methods   | answer                                                        |
|------------|-----------|---------------------------------------------------------------|
| `/`        | GET, HEAD | 200 `text/plain` greeting for today (UTC)                     |
| `/healthz` | GET, HEAD | 200 `text/plain` `ok`                                         |
| `/work`    | GET, HEAD | 200 after `delay_ms`, `cpu_us` of CPU, `bytes` filler bytes;  |
|            |           | 400 on a bad parameter                                        |
| `/echo`    | POST      | 200 with the request body back; 413 beyond the bound          |
| other      | any       | 404                                                           |

A known path with a method it does not take is 405 with `Allow`.

Served three ways (README.md): Flask's own development server (`python3 app.py`, as the
original `docker run -p 5000:5000 tinyfish` did), uWSGI (`module = app:app`) and gunicorn
(`gunicorn app:app`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import unicodedata
from datetime import datetime, timezone

from flask import Flask, Response, request

# --- limits, as crates/app/src/work.rs and server.rs ---------------------------------------

#: Largest `cpu_us`: one second of CPU spun on a worker.
MAX_CPU_US = 1_000_000
#: Largest `bytes`: a 16 MiB response body.
MAX_BYTES = 16 * 1024 * 1024
#: Largest `delay_ms`: one minute of waiting.
MAX_DELAY_MS = 60_000
#: Largest `POST /echo` body (the Rust app's default); `TINYFISH_ECHO_MAX_BYTES` changes it.
ECHO_MAX_BYTES = int(os.environ.get("TINYFISH_ECHO_MAX_BYTES", str(1024 * 1024)))

#: `/work?bytes=` is sent in blocks of this size, like the Rust app's static 64 KiB block.
FILL_LEN = 64 * 1024
_FILL = b"x" * FILL_LEN

TEXT = "text/plain"
OCTETS = "application/octet-stream"
NOT_FOUND = b"not found: try /, /healthz, /work or /echo\n"
NOT_ALLOWED = b"method not allowed\n"

#: What each known path allows, for 405's `Allow` (same order as the Rust app).
ALLOW = {"/": "GET, HEAD", "/healthz": "GET, HEAD", "/work": "GET, HEAD", "/echo": "POST"}

# English names whatever the locale (strftime's %A and %B follow LC_TIME).
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)

SECS_PER_DAY = 86_400


# --- the greeting --------------------------------------------------------------------------


def greeting_for(date: datetime) -> str:
    """`Hello World on this date Tuesday, November 24, 2026.` (day zero-padded)."""
    return (
        f"Hello World on this date {_WEEKDAYS[date.weekday()]}, "
        f"{_MONTHS[date.month - 1]} {date.day:02d}, {date.year}."
    )


def greeting_for_day(day: int) -> str:
    """The greeting for a UTC day counted from 1970-01-01 (as greeting.rs)."""
    return greeting_for(datetime.fromtimestamp(day * SECS_PER_DAY, tz=timezone.utc))


_cache: tuple[int, bytes] = (-1, b"")


def today() -> bytes:
    """Today's greeting (UTC) as bytes, rebuilt only when the UTC day changes."""
    global _cache
    day = int(time.time()) // SECS_PER_DAY
    cached_day, body = _cache
    if cached_day != day:
        body = greeting_for_day(day).encode()
        _cache = (day, body)  # one tuple store: safe between threads
    return body


# --- /work parameters (work.rs: WorkParams::parse) -----------------------------------------


class WorkParamError(ValueError):
    """A query `/work` cannot serve; `str()` is the one-line 400 body (without `\\n`)."""


def _truncate(s: str) -> str:
    """Keeps error bodies one short line: control characters dropped, 64 characters."""
    out = "".join(c for c in s if unicodedata.category(c) != "Cc")[:64]
    if len(s) > 64:
        out += "\u2026"
    return out


def _rust_debug(s: str) -> str:
    """Rust's `{:?}` of a string without control characters: quoted, `\\` and `"` escaped."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_work(query: str) -> tuple[int, int, int]:
    """`(cpu_us, bytes, delay_ms)` from a raw query string, or `WorkParamError`."""
    params = {"cpu_us": 0, "bytes": 0, "delay_ms": 0}
    limits = {"cpu_us": MAX_CPU_US, "bytes": MAX_BYTES, "delay_ms": MAX_DELAY_MS}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if key not in params:
            raise WorkParamError(
                f"{_truncate(key)}: unknown parameter; /work takes cpu_us, bytes and delay_ms"
            )
        top = limits[key]
        if not (value and value.isascii() and value.isdigit() and int(value) <= top):
            raise WorkParamError(
                f"{key}: expected an integer from 0 to {top}, got {_rust_debug(_truncate(value))}"
            )
        params[key] = int(value)
    return params["cpu_us"], params["bytes"], params["delay_ms"]


def spin_cpu(us: int) -> None:
    """Spins until this thread has used about `us` microseconds of CPU (its own CPU clock,
    so time spent descheduled or waiting for the GIL does not count)."""
    if us <= 0:
        return
    target = time.thread_time() + us / 1e6
    x = 0
    while time.thread_time() < target:
        for i in range(256):
            x = (x * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF


def _fill(n: int):
    while n > 0:
        k = min(n, FILL_LEN)
        n -= k
        yield _FILL if k == FILL_LEN else _FILL[:k]


# --- the app -------------------------------------------------------------------------------


def text(status: int, body: bytes | str, **headers: str) -> Response:
    """A `text/plain` answer: exactly `text/plain`, without Flask's `; charset=utf-8`."""
    resp = Response(body, status=status, content_type=TEXT)
    for k, v in headers.items():
        resp.headers[k.replace("_", "-")] = v
    return resp


app = Flask(__name__)
# `//healthz` is not `/healthz` to the routes (the Rust app matches the path exactly;
# Werkzeug's routing would redirect with 308). Werkzeug's server still folds a leading `//`
# before the app sees the path.
app.url_map.merge_slashes = False

# `provide_automatic_options=False`: OPTIONS is 405 like in the Rust app, not Flask's 200.


@app.route("/", methods=["GET"], provide_automatic_options=False)
def root() -> Response:
    return text(200, today())


@app.route("/healthz", methods=["GET"], provide_automatic_options=False)
def healthz() -> Response:
    return text(200, b"ok")


@app.route("/work", methods=["GET"], provide_automatic_options=False)
def work() -> Response:
    try:
        cpu_us, n, delay_ms = parse_work(request.query_string.decode("utf-8", "replace"))
    except WorkParamError as e:
        return text(400, f"{e}\n".encode())
    if delay_ms:
        # Blocks this thread: WSGI has no timer to wait on (the Rust app's wait holds no worker).
        time.sleep(delay_ms / 1000)
    spin_cpu(cpu_us)
    if n <= FILL_LEN:
        return Response(_FILL[:n], status=200, content_type=OCTETS)
    resp = Response(_fill(n), status=200, content_type=OCTETS)
    resp.headers["Content-Length"] = str(n)
    return resp


@app.route("/echo", methods=["POST"], provide_automatic_options=False)
def echo() -> Response:
    limit = ECHO_MAX_BYTES

    def too_large() -> Response:
        return text(
            413,
            f"request body too large: /echo answers at most {limit} bytes\n".encode(),
            Connection="close",
        )

    content_type = request.headers.get("Content-Type") or OCTETS
    chunked = "Transfer-Encoding" in request.headers
    declared = request.content_length
    if declared is not None and not chunked and declared > limit:
        return too_large()
    # Read at most one byte past the bound (a chunked body has no length up front).
    read = request.stream.read
    if chunked and not request.environ.get("wsgi.input_terminated"):
        # uWSGI's http-socket passes a chunked body on as it came, and Werkzeug, without
        # `wsgi.input_terminated`, would see none: uWSGI de-chunks it on request.
        read = _uwsgi_chunked_reader() or read
    parts, got = [], 0
    try:
        while got <= limit:
            block = read(min(FILL_LEN, limit + 1 - got))
            if not block:
                break
            parts.append(block)
            got += len(block)
    except Exception:  # a client that went away mid-body
        return text(400, b"could not read the request body\n")
    if got > limit:
        return too_large()
    resp = Response(b"".join(parts), status=200)
    resp.headers["Content-Type"] = content_type
    return resp


def _uwsgi_chunked_reader():
    """Under uWSGI, a `read(n)` over `uwsgi.chunked_read()` (n is ignored: a chunk a call,
    `b""` at the end); elsewhere `None`."""
    try:
        import uwsgi  # only importable inside uWSGI
    except ImportError:
        return None
    return lambda _n: uwsgi.chunked_read(30)


@app.errorhandler(404)
def not_found(_e) -> Response:
    return text(404, NOT_FOUND)


@app.errorhandler(405)
def not_allowed(_e) -> Response:
    return text(405, NOT_ALLOWED, Allow=ALLOW.get(request.path, "GET, HEAD"))


# --- `python3 app.py`: Flask's own server ---------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="app.py",
        description="TinyFish on Flask's own (Werkzeug) development server, threaded.",
    )
    p.add_argument("--host", default=os.environ.get("APP_HOST", "0.0.0.0"),
                   help="address to listen on (default 0.0.0.0, as the original container)")
    p.add_argument("--port", type=int, default=int(os.environ.get("APP_PORT", "5000")),
                   help="port; 0 picks a free one (default 5000)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="both at once, as the Rust app's --listen (overrides --host/--port)")
    p.add_argument("--no-threads", action="store_true",
                   help="one request at a time (Flask's default is a thread per connection)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request to stderr, as Flask's server does by default "
                        "(off: the bench runs every server without an access log)")
    args = p.parse_args(argv)
    if args.listen:
        host, sep, port = args.listen.rpartition(":")
        if not sep or not port.isdigit():
            p.error(f"--listen {args.listen!r}: expected HOST:PORT")
        args.host, args.port = host.strip("[]"), int(port)
    return args


def main(argv: list[str] | None = None) -> int:
    """Serves `app` on Werkzeug's server: what `app.run(host, port)` starts (threaded, no
    debugger, no reloader), but through `make_server` so that port 0 can be told: the
    bound address goes to stdout as `listening on http://HOST:PORT`, like the Rust app."""
    args = _parse_args(argv)
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        """Werkzeug's handler; without --access-log, without the line per request."""

        if not args.access_log:

            def log_request(self, code="-", size="-"):
                pass

    # SIGTERM (docker stop, the bench) stops the server like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server = make_server(
            args.host, args.port, app, threaded=not args.no_threads, request_handler=Handler
        )
    except OSError as e:
        print(f"app.py: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"app.py: Flask {_flask_version()} development server on http://{shown}:{port}",
          file=sys.stderr, flush=True)
    print(f"listening on http://{shown}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _flask_version() -> str:
    try:
        from importlib.metadata import version

        return version("flask")
    except Exception:  # not installed as a distribution (e.g. only on sys.path)
        return "?"


if __name__ == "__main__":
    sys.exit(main())
