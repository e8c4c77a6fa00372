"""The Flask app against the Rust app's contract (crates/app/src/routes.rs, work.rs,
greeting.rs): Flask's test client for the routes, and one real server on a socket.

Run from the repository root with either
    python3 -m unittest discover -s services/flask/tests -v
    python3 -m pytest services/flask/tests
(unittest needs nothing but Flask).
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SERVICE_DIR))

import app as tinyfish  # noqa: E402  (services/flask/app.py)

GREETING = re.compile(
    rb"^Hello World on this date (Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    rb"(January|February|March|April|May|June|July|August|September|October|November|December)"
    rb" \d\d, \d{4}\.$"
)


class Greeting(unittest.TestCase):
    def test_matches_the_original_wording(self):
        # The same days as greeting.rs's tests.
        day = (1_795_478_400 + 3_600) // 86_400
        self.assertEqual(
            tinyfish.greeting_for_day(day), "Hello World on this date Tuesday, November 24, 2026."
        )
        self.assertEqual(
            tinyfish.greeting_for_day(1_772_668_800 // 86_400),
            "Hello World on this date Thursday, March 05, 2026.",
        )
        self.assertEqual(
            tinyfish.greeting_for_day(0), "Hello World on this date Thursday, January 01, 1970."
        )

    def test_today_is_utc_and_cached(self):
        a = tinyfish.today()
        self.assertRegex(a, GREETING)
        b = tinyfish.today()
        if a == b:  # unless the test straddles midnight
            self.assertIs(a, b)


class Routes(unittest.TestCase):
    def setUp(self):
        self.c = tinyfish.app.test_client()

    def check(self, method, path, status, body=None, content_type="text/plain", **kw):
        r = self.c.open(path, method=method, **kw)
        self.assertEqual(r.status_code, status, (method, path, r.get_data()))
        if content_type is not None:
            self.assertEqual(r.headers["Content-Type"], content_type)
        if body is not None:
            self.assertEqual(r.get_data(), body)
        return r

    def test_root(self):
        r = self.check("GET", "/", 200)
        self.assertRegex(r.get_data(), GREETING)
        self.assertEqual(r.headers["Content-Length"], str(len(r.get_data())))
        head = self.check("HEAD", "/", 200, b"")
        self.assertEqual(head.headers["Content-Length"], r.headers["Content-Length"])

    def test_healthz(self):
        self.check("GET", "/healthz", 200, b"ok")
        self.check("HEAD", "/healthz", 200, b"")

    def test_not_found(self):
        body = b"not found: try /, /healthz, /work or /echo\n"
        for method, path in [("GET", "/nope"), ("POST", "/nope"), ("GET", "/healthz/"),
                             ("GET", "/work/"), ("DELETE", "/x/y")]:
            self.check(method, path, 404, body)

    def test_wrong_method_is_405_with_allow(self):
        for method, path, allow in [
            ("POST", "/", "GET, HEAD"),
            ("OPTIONS", "/", "GET, HEAD"),
            ("DELETE", "/healthz", "GET, HEAD"),
            ("PUT", "/work", "GET, HEAD"),
            ("GET", "/echo", "POST"),
            ("OPTIONS", "/echo", "POST"),
        ]:
            r = self.check(method, path, 405, b"method not allowed\n")
            self.assertEqual(r.headers["Allow"], allow, (method, path))

    def test_work_bytes(self):
        for n in (0, 1, 4096, 65_536, 65_537, 200_000):
            r = self.check("GET", f"/work?bytes={n}", 200, content_type="application/octet-stream")
            self.assertEqual(r.get_data(), b"x" * n)
            self.assertEqual(r.headers["Content-Length"], str(n))
        r = self.check("HEAD", "/work?bytes=100000", 200, b"", "application/octet-stream")
        self.assertEqual(r.headers["Content-Length"], "100000")
        self.check("GET", "/work", 200, b"", "application/octet-stream")
        self.check("GET", "/work?&&", 200, b"", "application/octet-stream")
        big = f"/work?cpu_us=0&bytes={tinyfish.MAX_BYTES}&delay_ms=0"
        self.assertEqual(len(self.check("GET", big, 200, content_type=None).get_data()),
                         tinyfish.MAX_BYTES)

    def test_work_errors_name_the_parameter_on_one_line(self):
        for query, name in [
            ("cpu_us=abc", "cpu_us"),
            ("cpu_us=-1", "cpu_us"),
            ("cpu_us=+5", "cpu_us"),
            ("cpu_us=1000001", "cpu_us"),
            ("bytes=16777217", "bytes"),
            ("bytes=", "bytes"),
            ("bytes", "bytes"),
            ("delay_ms=60001", "delay_ms"),
            ("delay_ms=99999999999999999999999", "delay_ms"),
            ("bytes=1&delay_ms=1.5", "delay_ms"),
            ("colour=red", "colour"),
        ]:
            body = self.check("GET", f"/work?{query}", 400).get_data().decode()
            self.assertTrue(body.startswith(name + ":"), (query, body))
            self.assertTrue(body.endswith("\n") and body.count("\n") == 1, (query, body))
        self.assertEqual(
            self.check("GET", "/work?bytes=+5", 400).get_data(),
            b'bytes: expected an integer from 0 to 16777216, got "+5"\n',
        )
        self.assertEqual(
            self.check("GET", "/work?colour=red", 400).get_data(),
            b"colour: unknown parameter; /work takes cpu_us, bytes and delay_ms\n",
        )
        long = self.check("GET", "/work?bytes=" + "x" * 10_000, 400).get_data().decode()
        self.assertLess(len(long), 200)
        self.assertTrue(long.endswith('\u2026"\n'), long)

    def test_work_waits_and_spins(self):
        t, cpu = time.monotonic(), time.thread_time()
        self.check("GET", "/work?delay_ms=30", 200, b"", "application/octet-stream")
        self.assertGreaterEqual(time.monotonic() - t, 0.03)
        self.assertLess(time.thread_time() - cpu, 0.02)  # waiting is not spinning
        cpu = time.thread_time()
        self.check("GET", "/work?cpu_us=20000", 200, b"", "application/octet-stream")
        used = time.thread_time() - cpu
        self.assertGreaterEqual(used, 0.02)
        self.assertLess(used, 2)

    def test_echo(self):
        r = self.check("POST", "/echo", 200, b"hello", "text/x-mine", data=b"hello",
                       headers={"Content-Type": "text/x-mine"})
        self.assertEqual(r.headers["Content-Length"], "5")
        self.check("POST", "/echo", 200, b"\x00\xff", "application/octet-stream", data=b"\x00\xff")
        self.check("POST", "/echo", 200, b"", "application/octet-stream")
        limit = tinyfish.ECHO_MAX_BYTES
        self.check("POST", "/echo", 200, b"e" * limit, None, data=b"e" * limit)
        r = self.check(
            "POST", "/echo", 413,
            f"request body too large: /echo answers at most {limit} bytes\n".encode(),
            data=b"e" * (limit + 1),
        )
        self.assertEqual(r.headers["Connection"], "close")


class RealServer(unittest.TestCase):
    """`python3 app.py --host 127.0.0.1 --port 0`: Flask's own server on a socket."""

    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen(
            [sys.executable, str(SERVICE_DIR / "app.py"), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = cls.proc.stdout.readline()  # `listening on http://127.0.0.1:PORT`, once bound
        if not line.startswith("listening on http://"):
            cls.proc.kill()
            raise RuntimeError(f"app.py did not start: {line!r} {cls.proc.stderr.read()}")
        cls.base = line.split()[-1]
        cls.host, cls.port = cls.base[len("http://"):].rsplit(":", 1)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stdout.close()
        cls.proc.stderr.close()

    def test_root_bytes(self):
        with urllib.request.urlopen(self.base + "/", timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["Content-Type"], "text/plain")
            body = r.read()
        self.assertRegex(body, GREETING)
        self.assertEqual(body, tinyfish.today())

    def test_errors_and_echo(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.base + "/nope", timeout=5)
        self.assertEqual(e.exception.code, 404)
        self.assertEqual(e.exception.read(), b"not found: try /, /healthz, /work or /echo\n")
        e.exception.close()
        req = urllib.request.Request(self.base + "/echo", data=b"ping", method="POST",
                                     headers={"Content-Type": "application/x-ping"})
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual((r.status, r.headers["Content-Type"], r.read()),
                             (200, "application/x-ping", b"ping"))

    def test_every_answer_closes_the_connection(self):
        # Werkzeug's server (2.1 and later) sends `Connection: close` on every response.
        c = http.client.HTTPConnection(self.host, int(self.port), timeout=5)
        c.request("GET", "/healthz")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"ok"))
        self.assertEqual(r.getheader("Connection"), "close")
        c.close()

    def test_zz_sigterm_stops_it(self):  # runs last (alphabetical order)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=5), 0)


if __name__ == "__main__":
    unittest.main()
