"""Browser tests of the Integrations UI (`GET /connect`).

One `hourbridge sandbox` and one `hourbridge serve` (fresh data dir, free loopback ports) per
test session, started from the built binary (`HOURBRIDGE_BIN`, default target/debug/hourbridge);
Debian's Chromium (`/usr/bin/chromium`) driven headless by Playwright's Python client; axe-core
from the npm cache (`HOURBRIDGE_AXE`). Screenshots go to target/ui-screenshots/.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("HOURBRIDGE_BIN", str(ROOT / "target" / "debug" / "hourbridge"))
CHROMIUM = os.environ.get("HOURBRIDGE_CHROMIUM", "/usr/bin/chromium")
AXE = os.environ.get(
    "HOURBRIDGE_AXE",
    str(Path.home() / ".cache" / "hourbridge" / "node" / "node_modules" / "axe-core" / "axe.min.js"),
)
SHOTS = ROOT / "target" / "ui-screenshots"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Api:
    """The API as a host product calls it."""

    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                text = res.read().decode()
                return res.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None)

    def ok(self, method, path, body=None):
        status, value = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} answered {status}: {value}"
        return value


class World:
    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.procs = []
        sandbox = subprocess.Popen(
            [BIN, "sandbox", "--addr", "127.0.0.1:0", "--entries", "3000", "--latency-ms", "150"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        self.procs.append(sandbox)
        self.sandbox_text = []
        self.vars = {}
        deadline = time.time() + 60
        while time.time() < deadline:
            line = sandbox.stdout.readline()
            if not line:
                raise RuntimeError("hourbridge sandbox exited: " + "".join(self.sandbox_text))
            if line.startswith("Sandbox ready"):
                break
            self.sandbox_text.append(line)
            m = re.match(r"\s*export (\w+)=(.*)$", line)
            if m:
                self.vars[m.group(1)] = m.group(2).strip()
        assert "HOURBRIDGE_HARVEST_API_URL" in self.vars, self.sandbox_text
        # Keep draining the sandbox's stdout so it never blocks on a full pipe.
        self._drain(sandbox)
        site = re.search(r"domain:\s+(127\.0\.0\.1:\d+)", "".join(self.sandbox_text))
        self.timelog_domain = site.group(1)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = self.tmp / "data"
        env = dict(os.environ)
        env.pop("HOURBRIDGE_JWT_SECRET", None)
        env.pop("HOURBRIDGE_APP_URL", None)
        env.update(self.vars)
        env.update({
            "HOURBRIDGE_PUBLIC_URL": self.base,
            "HOURBRIDGE_TIMELOG_ALLOW_HTTP": "1",
            "RUST_LOG": "info",
        })
        self.log = open(self.tmp / "serve.log", "w")
        serve = subprocess.Popen(
            [BIN, "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data)],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        self.procs.append(serve)
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert serve.poll() is None, "hourbridge serve exited: " + self.server_log()
                assert time.time() < deadline, "hourbridge serve did not listen"
                time.sleep(0.05)

    @staticmethod
    def _drain(proc):
        import threading

        def run():
            for _ in proc.stdout:
                pass

        threading.Thread(target=run, daemon=True).start()

    def server_log(self):
        try:
            return (self.tmp / "serve.log").read_text()[-4000:]
        except OSError:
            return ""

    def token(self, ws, person, role):
        env = dict(os.environ)
        env.pop("HOURBRIDGE_JWT_SECRET", None)
        out = subprocess.run(
            [BIN, "token", "--workspace", ws, "--person", person, "--role", role, "--data-dir", str(self.data)],
            env=env, capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()

    def workspace(self, name="Acme AS"):
        """A fresh workspace with an owner (olga), an admin (ada), a manager (bob), a member
        (eve), and a project; answers the tokens and the project id."""
        ws = "ui-" + secrets.token_hex(4)
        owner = Api(self.base, self.token(ws, "olga", "owner"))
        owner.ok("POST", "/v1/workspaces", {
            "name": name, "time_zone": "Europe/Oslo",
            "owner": {"name": "Olga Owner", "email": "olga@acme.test"},
        })
        people = {}
        for person, pname, email, role in [
            ("ada", "Ada Admin", "ada@acme.test", "admin"),
            ("bob", "Bob Builder", "bob.builder@acme.test", "manager"),
            ("eve", "Eve Engineer", "eve@acme.test", "member"),
        ]:
            p = owner.ok("POST", "/v1/people", {"name": pname, "email": email, "role": role})
            people[person] = (p["id"], role)
        project = owner.ok("POST", "/v1/projects", {"name": "Fleet & Mobile", "start_date": "2026-01-01"})
        tokens = {"olga": owner.token}
        # Tokens name the host person ids, so the UI's "who am I" is a real person.
        for person, (pid, role) in people.items():
            tokens[person] = self.token(ws, pid, role)
        return {"ws": ws, "tokens": tokens, "project": project["id"], "owner": owner,
                "service": Api(self.base, self.token(ws, "billing", "service"))}

    def close(self):
        for p in reversed(self.procs):
            p.kill()
            p.wait()
        self.log.close()


@pytest.fixture(scope="session")
def world():
    assert Path(BIN).exists(), f"build the binary first ({BIN})"
    tmp = tempfile.mkdtemp(prefix="hourbridge-ui-")
    w = World(tmp)
    try:
        yield w
    finally:
        w.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # Generous for a loaded 2-core CI machine; a passing run waits far less.
    expect.set_options(timeout=15000)

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    ctx.set_default_timeout(20000)
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"script errors in the page: {errors}"


def open_ui(page, world, token, project=None):
    frag = "token=" + token + ("&project=" + project if project else "")
    page.goto("about:blank")
    page.goto(world.base + "/connect#" + frag)
    # The token is removed from the address bar at once.
    page.wait_for_function("!location.hash")
    assert "token" not in page.url, page.url
    page.locator("h1").first.wait_for()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def axe(page):
    """Runs axe-core in the page; answers the serious and critical violations."""
    src = Path(AXE).read_text()
    page.evaluate(src)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert result["passes"], "axe-core ran no rule"
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]
