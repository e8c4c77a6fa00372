"""The app under the servers the bench puts it in: uWSGI from deploy/uwsgi/*.ini, NGINX
from deploy/nginx/uwsgi.conf in front of uWSGI's socket, gunicorn. Each test renders the
template as the bench does (only the placeholders it sets), starts the server in its own
process group on 127.0.0.1, sends a handful of requests and stops it with SIGTERM.

A test whose program is missing is skipped (Debian: uwsgi-core uwsgi-plugin-python3
python3-flask, nginx-light, gunicorn). Run as test_app.py says.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[1]
ROOT = SERVICE_DIR.parents[1]
UWSGI_PLUGIN = Path("/usr/lib/uwsgi/plugins/python3_plugin.so")


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def render(template: Path, **values: str) -> str:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    return text


def connects(addr: str | None = None, path: str | None = None) -> bool:
    s = socket.socket(socket.AF_UNIX) if path else socket.socket()
    s.settimeout(0.5)
    try:
        if path:
            s.connect(path)
        else:
            host, port = addr.rsplit(":", 1)
            s.connect((host, int(port)))
        return True
    except OSError:
        return False
    finally:
        s.close()


def group_alive(pgid: int) -> bool:
    out = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True)
    return any(not line.strip().startswith("Z") for line in out.stdout.splitlines())


class Server:
    """A command in its own process group, ready once `addr` or `sock` accepts."""

    def __init__(self, argv, cwd, addr=None, sock=None, timeout=10.0):
        self.log = open(os.path.join(cwd, "stderr"), "w+")
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        end = time.monotonic() + timeout
        while not connects(addr, sock):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                self.log.seek(0)
                raise AssertionError(f"{argv[0]} did not start:\n{self.log.read()[-3000:]}")
            time.sleep(0.02)

    def stop(self) -> float:
        """SIGTERM to the group; seconds until every process of it is gone."""
        t = time.monotonic()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        while group_alive(self.proc.pid) and time.monotonic() - t < 10:
            time.sleep(0.02)
        self.log.close()
        return time.monotonic() - t


def get(conn: http.client.HTTPConnection, path: str):
    conn.request("GET", path)
    r = conn.getresponse()
    return r, r.read()


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tinyfish-flask-"))
        # mkdtemp makes it 0700; NGINX's workers (`nobody` under a root master) must reach
        # the socket inside, as in the bench's scratch directories (0755).
        self.dir.chmod(0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def assert_greeting(self, r, body):
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/plain")
        self.assertTrue(body.startswith(b"Hello World on this date "), body)

    def uwsgi(self, ini: str, threads="2", **extra) -> tuple[Server, dict]:
        if not shutil.which("uwsgi") or not UWSGI_PLUGIN.exists():
            self.skipTest("uWSGI with the python3 plugin is not installed "
                          "(apt-get install uwsgi-core uwsgi-plugin-python3 python3-flask)")
        values = dict(threads=threads, prefix=str(self.dir), dir=str(SERVICE_DIR), **extra)
        conf = self.dir / "proxy.conf"
        conf.write_text(render(ROOT / "deploy" / "uwsgi" / ini, **values))
        server = Server(["uwsgi", "--ini", str(conf)], self.dir,
                        addr=values.get("listen"), sock=values.get("socket"))
        self.addCleanup(server.stop)
        return server, values


class Uwsgi(Base):
    def test_http_ini_closes_every_connection_and_says_so(self):
        server, v = self.uwsgi("http.ini", listen=free_addr())
        host, port = v["listen"].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        for _ in range(2):  # http.client reconnects after `Connection: close`
            r, body = get(c, "/")
            self.assert_greeting(r, body)
            self.assertEqual(r.getheader("Connection"), "close")
        r, body = get(c, "/nope")
        self.assertEqual((r.status, body), (404, b"not found: try /, /healthz, /work or /echo\n"))
        self.assertLess(server.stop(), 3.0)
        self.assertFalse((self.dir / "uwsgi.pid").exists())

    def test_http11_ini_keeps_the_connection(self):
        server, v = self.uwsgi("http11.ini", listen=free_addr())
        host, port = v["listen"].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        r, body = get(c, "/")
        self.assert_greeting(r, body)
        first = c.sock.getsockname()
        r, body = get(c, "/healthz")
        self.assertEqual((r.status, body), (200, b"ok"))
        self.assertEqual(c.sock.getsockname(), first, "the connection was not reused")
        c.close()
        self.assertLess(server.stop(), 3.0)

    def test_socket_ini_behind_nginx(self):
        nginx = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
        if not nginx:
            self.skipTest("nginx is not installed (apt-get install nginx-light)")
        sock = str(self.dir / "service.sock")
        server, _ = self.uwsgi("socket.ini", socket=sock)
        ndir = self.dir / "nginx"
        ndir.mkdir()
        addr = free_addr()
        (ndir / "proxy.conf").write_text(render(
            ROOT / "deploy" / "nginx" / "uwsgi.conf",
            threads="1", listen=addr, upstream="unix:" + sock, prefix=str(ndir)))
        proxy = Server([nginx, "-p", str(ndir), "-c", str(ndir / "proxy.conf"), "-e", "stderr"],
                       ndir, addr=addr)
        self.addCleanup(proxy.stop)
        host, port = addr.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        r, body = get(c, "/")
        self.assert_greeting(r, body)
        first = c.sock.getsockname()
        c.request("POST", "/echo", body=b"via uwsgi", headers={"Content-Type": "text/x-t"})
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("Content-Type"), r.read()),
                         (200, "text/x-t", b"via uwsgi"))
        # A chunked body reaches the app whole (NGINX de-chunks it).
        c.request("POST", "/echo", body=iter([b"chunk", b"ed"]), encode_chunked=True)
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"chunked"))
        r, body = get(c, "/work?bytes=70000")
        self.assertEqual((r.status, len(body)), (200, 70000))
        self.assertEqual(c.sock.getsockname(), first, "NGINX did not keep the client's connection")
        c.close()
        proxy.stop()
        self.assertLess(server.stop(), 3.0)
        self.assertFalse(os.path.exists(sock), "uWSGI left its socket behind")


class Gunicorn(Base):
    def test_gthread_keeps_the_connection(self):
        if not shutil.which("gunicorn"):
            self.skipTest("gunicorn is not installed (apt-get install gunicorn)")
        addr = free_addr()
        server = Server(["gunicorn", "--bind", addr, "--workers", "1", "--worker-class", "gthread",
                         "--threads", "1", "--keep-alive", "60", "--backlog", "4096",
                         "--chdir", str(SERVICE_DIR), "app:app"], self.dir, addr=addr)
        self.addCleanup(server.stop)
        host, port = addr.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        r, body = get(c, "/")
        self.assert_greeting(r, body)
        first = c.sock.getsockname()
        r, body = get(c, "/healthz")
        self.assertEqual((r.status, body), (200, b"ok"))
        self.assertEqual(c.sock.getsockname(), first)
        c.close()
        self.assertLess(server.stop(), 3.0)


if __name__ == "__main__":
    unittest.main()
