"""A web page served elsewhere cannot read the Flink REST API of the real local stack: headless
Chromium loads a page from another loopback port that fetches ``/jobs/overview`` and writes
the outcome into its DOM, which ``--dump-dom`` prints. The control, the same page in a Chromium
that enforces no cross-origin rule, reads the answer: the refusal is the origin check, not an
unreachable API or a broken page."""

from __future__ import annotations

import contextlib
import html
import http.server
import re
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from aimass.settings import Settings
from aimass.stack.local import LocalStack

pytestmark = pytest.mark.integration

PAGE = """<!doctype html><html><body><pre id="outcome">pending</pre><script>
fetch({url!r}).then(r => r.text()).then(t => {{ document.getElementById('outcome').textContent = 'READ ' + t; }})
  .catch(e => {{ document.getElementById('outcome').textContent = 'REFUSED ' + e; }});
</script></body></html>"""


@contextlib.contextmanager
def page_server(body: str) -> Iterator[str]:
    """Serve ``body`` at ``/`` of a free loopback port; yields the page's URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def outcome(url: str, *flags: str) -> str:
    """What the page at ``url`` wrote into its DOM, loaded by headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium not found: `make browser` installs it (apt-get install chromium)")
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=10000",
         *flags, "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False,
    )
    found = re.search(r'<pre id="outcome">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no outcome in Chromium's DOM (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return html.unescape(found.group(1))


@pytest.fixture(scope="module")
def probe(local_stack: LocalStack, test_settings: Settings) -> Iterator[str]:
    """A page on another origin that tries to read the stack's job list."""
    with page_server(PAGE.format(url=f"{test_settings.flink.rest_url}/jobs/overview")) as url:
        yield url


def test_flink_names_its_own_origin_not_a_wildcard(local_stack: LocalStack, test_settings: Settings) -> None:
    with urllib.request.urlopen(f"{test_settings.flink.rest_url}/jobs/overview", timeout=10) as answer:  # noqa: S310
        assert answer.headers["Access-Control-Allow-Origin"] == test_settings.flink.rest_url


def test_a_page_served_elsewhere_cannot_read_the_rest_api(probe: str) -> None:
    result = outcome(probe)
    assert result.startswith("REFUSED TypeError"), result


def test_the_same_page_reads_it_where_nothing_checks_the_origin(probe: str, tmp_path: object) -> None:
    result = outcome(probe, "--disable-web-security", f"--user-data-dir={tmp_path}")
    assert result.startswith('READ {"jobs":'), result
