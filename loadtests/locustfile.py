"""Realistic traffic for the tracker: recipients, link scanners and image proxies.

    TRACKER_DATABASE_URL=postgresql://... TRACKER_SECRET_KEYS=key1,key2 \\
        locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 1m \\
        --host http://127.0.0.1:8000

Before the run, deliveries are recorded in the target service's database and
their tokens signed with the target's keys, exactly as the send side does (the
edge reads no database, so this is the only setup it needs). Environment:

- ``TRACKER_DATABASE_URL``: the target service's PostgreSQL DSN (required).
- ``TRACKER_SECRET_KEYS``: the target's signing keys, newest first (required).
- ``LOAD_DELIVERIES``: messages to mint (default 2000).
- ``LOAD_CAMPAIGN``: the campaign id they belong to (default ``load-<random>``).

Who is simulated:

- ``Recipient``: opens (a third of recipients reopen the message several times, as
  mail clients reload images), clicks links with Zipf-like popularity (the first
  link of a message gets most clicks), and now and then unsubscribes: ``GET /u/``
  (the page) then ``POST /u/`` with ``List-Unsubscribe=One-Click`` (RFC 8058),
  at most once per message. A 404 there means the target does not serve ``/u/``
  yet; it is reported under its own name and is not a failure.
- ``LinkScanner``: a mail security gateway: HEAD then GET on every link of a
  message within a second, before any human sees it.
- ``ImageProxy``: Gmail's image proxy fetching the pixel (``GoogleImageProxy``).

Redirects are never followed: targets are not loopback and need not exist. Every
request named in ``RECORDED`` is one row in the ``events`` table when it succeeds
(``tests/test_locust.py`` holds the tracker to that).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

from locust import FastHttpUser, between, events, task

HERE = Path(__file__).resolve().parent

#: request names whose successful hits each become one event row
RECORDED = frozenset({"open", "open (image proxy)", "click", "scan HEAD", "scan GET",
                      "unsubscribe POST"})
#: the name of /u/ answers while the target does not serve that endpoint yet
UNSUBSCRIBE_MISSING = "unsubscribe (404: /u/ not served yet)"

MAIL_CLIENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
)
SCANNERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/90.0.4430.93 Safari/537.36 (Barracuda Sentinel)",
    "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
    "Microsoft-ATP-SafeLinks/1.0",
)
GOOGLE_IMAGE_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                      "(via ggpht.com GoogleImageProxy)")


class Tokens:
    """The minted paths, shared by every simulated user of this process."""

    opens: list[str] = []
    clicks: list[list[str]] = []
    unsubscribes: list[str] = []
    unsubscribed: set[int] = set()
    link_weights: list[float] = []

    @classmethod
    def load(cls) -> None:
        """Mint in a child process: locust patches sockets with gevent, and asyncpg
        (which minting uses) belongs on a plain asyncio loop."""
        campaign = os.environ.get("LOAD_CAMPAIGN") or f"load-{uuid.uuid4().hex[:8]}"
        out = subprocess.run(
            [sys.executable, str(HERE / "minting.py"), "--campaign", campaign,
             "--deliveries", os.environ.get("LOAD_DELIVERIES", "2000")],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"minting tokens failed:\n{out.stderr}")
        minted = json.loads(out.stdout)
        cls.opens, cls.clicks = minted["opens"], minted["clicks"]
        cls.unsubscribes = minted["unsubscribes"]
        links = len(cls.clicks[0])
        cls.link_weights = [1 / (k + 1) ** 1.2 for k in range(links)]  # Zipf-like, s = 1.2

    @classmethod
    def message(cls) -> int:
        return random.randrange(len(cls.opens))


@events.init.add_listener
def _mint(environment, **_kwargs) -> None:
    if not Tokens.opens:
        Tokens.load()


def expect(response, status: int, name: str, *, gif: bool = False) -> None:
    """Mark a response failed unless it is what the tracker promises."""
    if response.status_code != status:
        response.failure(f"{name}: expected {status}, got {response.status_code}")
    elif gif and response.headers.get("content-type") != "image/gif":
        response.failure(f"{name}: expected image/gif, got {response.headers.get('content-type')}")
    elif status == 302 and not response.headers.get("location", "").startswith("https://"):
        response.failure(f"{name}: redirect to {response.headers.get('location')!r}")
    else:
        response.success()


class Recipient(FastHttpUser):
    """A person reading the message: opens, reopens, clicks, rarely unsubscribes."""

    weight = 10
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.user_agent = random.choice(MAIL_CLIENTS)
        self.reopener = random.random() < 0.3

    def _get(self, path: str, name: str, status: int, **kwargs) -> None:
        with self.client.get(path, name=name, headers={"user-agent": self.user_agent},
                             allow_redirects=False, catch_response=True, **kwargs) as response:
            expect(response, status, name, gif=status == 200)

    @task(10)
    def open(self) -> None:
        message = Tokens.message()
        for _ in range(random.randint(2, 6) if self.reopener else 1):
            self._get(Tokens.opens[message], "open", 200)

    @task(4)
    def click(self) -> None:
        links = Tokens.clicks[Tokens.message()]
        link = random.choices(links, weights=Tokens.link_weights)[0]
        self._get(link, "click", 302)

    @task(1)
    def unsubscribe(self) -> None:
        message = Tokens.message()
        if message in Tokens.unsubscribed:
            return
        Tokens.unsubscribed.add(message)
        path = Tokens.unsubscribes[message]
        headers = {"user-agent": self.user_agent}
        with self.client.get(path, name="unsubscribe page", headers=headers,
                             catch_response=True) as page:
            if page.status_code == 404:
                page.request_meta["name"] = UNSUBSCRIBE_MISSING
                page.success()
                return
            expect(page, 200, "unsubscribe page")
        with self.client.post(path, name="unsubscribe POST", data="List-Unsubscribe=One-Click",
                              headers={**headers,
                                       "content-type": "application/x-www-form-urlencoded"},
                              allow_redirects=False, catch_response=True) as response:
            if 200 <= response.status_code < 400:
                response.success()
            else:
                response.failure(f"unsubscribe POST: got {response.status_code}")


class LinkScanner(FastHttpUser):
    """A security gateway checking every link of a message: HEAD, then GET, at once."""

    weight = 2
    wait_time = between(0.2, 1.0)

    @task
    def scan(self) -> None:
        headers = {"user-agent": random.choice(SCANNERS)}
        for link in Tokens.clicks[Tokens.message()]:
            for method in ("HEAD", "GET"):
                name = f"scan {method}"
                with self.client.request(method, link, name=name, headers=headers,
                                         allow_redirects=False, catch_response=True) as response:
                    expect(response, 302, name)


class ImageProxy(FastHttpUser):
    """Gmail's proxy fetching pixels on the recipients' behalf."""

    weight = 3
    wait_time = between(0.05, 0.3)

    @task
    def fetch(self) -> None:
        with self.client.get(Tokens.opens[Tokens.message()], name="open (image proxy)",
                             headers={"user-agent": GOOGLE_IMAGE_PROXY},
                             catch_response=True) as response:
            expect(response, 200, "open (image proxy)", gif=True)
