"""Evidence for the classifier (issue 9): precision and recall of every verdict over a
labelled set of real user agents, the per-call cost on the hot path, the pattern rules,
and the report-time SQL predicates run against a real PostgreSQL.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tracker.classify import (
    BurstDetector,
    Verdict,
    classify_hit,
    describe,
    from_flags,
    is_apple_proxy_address,
    refine_with_address,
    to_flags,
)
from tracker.classify.patterns import BURST_SQL, QUICK_CLICK_SECONDS, QUICK_CLICK_SQL, quick_click
from tracker.events import Flag, Kind
from tracker.tokens import Channel

LABELLED = Path(__file__).parent / "data" / "classify" / "labelled_user_agents.tsv"
KINDS = {"open": (Kind.OPEN,), "click": (Kind.CLICK,), "both": (Kind.OPEN, Kind.CLICK)}

# Thresholds, and why:
# - HUMAN precision: a machine counted as a person inflates the figure the issue is
#   about; 0.95 leaves room only for the scanners that look exactly like a browser
#   (Safe Links rows), which no user-agent rule can see.
# - HUMAN recall: discounting a real reader is the worse error (it silently deletes
#   engagement). Labels are the sources' own, not fitted: 8 of Crawler-Detect's
#   "devices" (ColdFusion, gvfs, Indy Library, companies_crawl, AndroidDownloadManager,
#   ...) are flagged by the installed crawlerdetect list, which is newer than that
#   fixture file; none is a mail client or browser. They cost 0.09 of recall, so 0.90.
# - OTHER_BOT: crawlerdetect's fixtures; recall 0.95, precision 0.90 for the same 8.
# - MACHINE_OPEN, PROXIED_OPEN: exact documented strings; all must be right.
# - SCANNER_CLICK precision 1.0 (only named scanners and HEAD are called scanners);
#   recall by user agent and method alone is bounded by the browser-lookalike rows,
#   so 0.6 here, the burst and quick-click patterns catch the rest.
THRESHOLDS = {
    Verdict.HUMAN: (0.95, 0.90),
    Verdict.MACHINE_OPEN: (1.0, 1.0),
    Verdict.PROXIED_OPEN: (1.0, 1.0),
    Verdict.SCANNER_CLICK: (1.0, 0.6),
    Verdict.OTHER_BOT: (0.90, 0.95),
}


def labelled_hits() -> list[tuple[Verdict, int, str, bytes | None, str]]:
    hits = []
    with LABELLED.open(newline="") as f:
        lines = (line for line in f if not line.startswith("#"))
        for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
            ua = row["user_agent"].encode() or None
            for kind in KINDS[row["kind"]]:
                hits.append((Verdict[row["expected"]], kind, row["method"], ua, row["source"]))
    return hits


def test_labelled_set_is_cited_and_well_formed() -> None:
    hits = labelled_hits()
    assert len(hits) > 300
    header = "".join(line for line in LABELLED.open() if line.startswith("#"))
    for source in {h[4] for h in hits}:
        assert f"#   {source} " in header, f"source {source} is not described in the header"
    assert {h[0] for h in hits} == set(Verdict), "every verdict needs labelled examples"


def test_precision_and_recall_per_verdict() -> None:
    hits = labelled_hits()
    confusion: Counter[tuple[Verdict, Verdict]] = Counter()
    misses = []
    for expected, kind, method, ua, source in hits:
        got = Verdict(classify_hit(ua, method, kind))
        confusion[expected, got] += 1
        if got != expected:
            misses.append(f"  {expected.name:>13} -> {got.name:<13} {Kind(kind).name:<5} "
                          f"{method:<4} [{source}] {ua!r:.90}")
    print(f"\nclassifier over {len(hits)} labelled hits ({LABELLED.name})")
    print(f"{'verdict':<14}{'support':>8}{'predicted':>10}{'precision':>10}{'recall':>8}")
    failures = []
    for verdict in Verdict:
        support = sum(n for (e, _), n in confusion.items() if e == verdict)
        predicted = sum(n for (_, g), n in confusion.items() if g == verdict)
        right = confusion[verdict, verdict]
        precision = right / predicted if predicted else 1.0
        recall = right / support if support else 1.0
        print(f"{verdict.name:<14}{support:>8}{predicted:>10}{precision:>10.3f}{recall:>8.3f}")
        min_p, min_r = THRESHOLDS[verdict]
        if precision < min_p or recall < min_r:
            failures.append(f"{verdict.name}: precision {precision:.3f} (>= {min_p}), "
                            f"recall {recall:.3f} (>= {min_r})")
    people = {Verdict.HUMAN, Verdict.PROXIED_OPEN}
    counted_wrongly = sum(n for (e, g), n in confusion.items() if (e in people) != (g in people))
    print(f"counted as people or not wrongly: {counted_wrongly} of {len(hits)}")
    print("misclassified:\n" + "\n".join(misses))
    assert not failures, failures


def test_crawler_lists_match_crawlerdetect_on_every_labelled_agent_and_pattern() -> None:
    """tracker.classify.crawlers matches crawlerdetect's lists with Hyperscan; it must
    give crawlerdetect's own answer on real agents and on a string made from every
    crawler pattern (bare, and inside a typical bot string)."""
    import re

    from crawlerdetect import CrawlerDetect
    from crawlerdetect.providers.crawlers import data as patterns

    from tracker.classify.crawlers import is_crawler

    agents = [ua.decode() for _, _, _, ua, _ in labelled_hits() if ua]
    for pattern in patterns:
        literal = re.sub(r"[\\^$]|\(\?[!=].*?\)|\[.*?\]|[().*+?{}|]", "", pattern)
        agents += [literal, f"Mozilla/5.0 (compatible; {literal}/1.0; +http://example.com)"]
    reference = CrawlerDetect()
    disagree = [ua for ua in agents if is_crawler(ua) != reference.is_crawler(ua)]
    assert len(agents) > 3000
    assert not disagree, disagree[:10]


def test_head_is_a_machine_whatever_it_claims() -> None:
    chrome = (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              b"Chrome/120.0 Safari/537.36")
    assert classify_hit(chrome, "GET", Kind.OPEN) == Verdict.HUMAN
    assert classify_hit(chrome, "HEAD", Kind.OPEN) == Verdict.MACHINE_OPEN
    assert classify_hit(chrome, "HEAD", Kind.CLICK) == Verdict.SCANNER_CLICK


def test_unsubscribes_are_never_discounted() -> None:
    # RFC 8058 one-click POSTs are sent by mailbox providers' servers by design
    assert classify_hit(b"curl/8.4.0", "POST", Kind.UNSUBSCRIBE) == Verdict.HUMAN
    assert classify_hit(None, "POST", Kind.SUBSCRIBE) == Verdict.HUMAN


def test_mail_clients_that_crawlerdetect_calls_crawlers_are_people() -> None:
    from crawlerdetect import CrawlerDetect

    outlook = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
    assert CrawlerDetect().is_crawler(outlook)  # the general list gets email wrong...
    assert classify_hit(outlook.encode(), "GET", Kind.OPEN) == Verdict.HUMAN  # ...we do not
    borrowed = ("Mozilla/5.0 (Windows; U; Windows NT 5.0; en-US; rv:1.7.10) Gecko/20050716 "
                "Thunderbird/1.0.6 - WebCrawler http://cognitiveseo.com/bot.html")
    assert classify_hit(borrowed.encode(), "GET", Kind.CLICK) == Verdict.OTHER_BOT


@pytest.mark.parametrize(("ua", "client", "os", "device_class", "is_bot"), [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "mobile", False),
    ("Mozilla/5.0 (iPad; CPU OS 9_0 like Mac OS X) AppleWebKit/601.1.17 (KHTML, like Gecko) "
     "Version/8.0 Mobile/13A175 Safari/600.1.4", "Mobile Safari", "iOS", "tablet", False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "Apple Mail", "Mac OS X", "desktop", False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Mobile/15E148", "Apple Mail", "iOS", "mobile", False),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
     "Outlook", "Windows", "desktop", False),
    ("Mozilla/5.0 (Linux; Android 12; SM-G991B Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/98.0.4758.87 Mobile Safari/537.36",
     "Chrome Mobile WebView", "Android", "mobile", False),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "Gmail Image Proxy", "Other", "proxy", False),
    ("Mozilla/5.0", "Apple Mail Privacy Protection", "Other", "proxy", True),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", "Other", "bot", True),
    ("", "Other", "Other", "bot", True),
])
def test_describe(ua: str, client: str, os: str, device_class: str, is_bot: bool) -> None:
    d = describe(ua)
    assert (d["client"], d["os"], d["device_class"], d["is_bot"]) == (client, os, device_class,
                                                                        is_bot)
    assert isinstance(d["device"], str) and d["device"]


def test_verdict_bits_fit_the_flags_without_touching_the_others() -> None:
    for verdict in Verdict:
        flags = Flag.HEAD | Flag.ANONYMOUS | to_flags(verdict)
        assert from_flags(flags) == verdict
        assert flags & (Flag.HEAD | Flag.ANONYMOUS) == Flag.HEAD | Flag.ANONYMOUS
    assert max(Verdict) <= Flag.VERDICT_MASK >> Flag.VERDICT_SHIFT


def test_burst_of_distinct_links_within_a_second() -> None:
    burst = BurstDetector(links=3, window=1.0)
    assert not burst.observe(7, 100.00, 1)
    assert not burst.observe(7, 100.20, 2)
    assert burst.observe(7, 100.40, 3)  # third distinct link inside one second
    assert burst.observe(7, 100.45, 4)
    # another delivery is unaffected
    assert not burst.observe(8, 100.50, 1)


def test_a_person_clicking_again_or_slowly_is_not_a_burst() -> None:
    burst = BurstDetector(links=3, window=1.0)
    # the same link clicked three times quickly (a double click, an impatient tap)
    assert not any(burst.observe(1, 10.0 + i * 0.1, 5) for i in range(3))
    # three links, but over three seconds
    assert not any(burst.observe(2, 10.0 + i * 1.5, i) for i in range(3))
    # two links quickly then a third after the window
    assert not burst.observe(3, 10.0, 1)
    assert not burst.observe(3, 10.3, 2)
    assert not burst.observe(3, 11.5, 3)


def test_burst_memory_is_bounded() -> None:
    burst = BurstDetector(links=3, window=1.0, capacity=1000)
    for delivery in range(50_000):
        for position in range(10):
            burst.observe(delivery, delivery * 0.001, position)
    assert len(burst) == 1000
    assert all(len(clicks) <= 3 for clicks in burst._recent.values())
    with pytest.raises(ValueError):
        BurstDetector(links=1)


def test_quick_click_rule_in_python() -> None:
    sent = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    soon = sent + timedelta(seconds=QUICK_CLICK_SECONDS - 1)
    later = sent + timedelta(seconds=QUICK_CLICK_SECONDS + 1)
    assert quick_click(Kind.CLICK, Channel.EMAIL, soon, sent)
    assert not quick_click(Kind.CLICK, Channel.EMAIL, later, sent)
    assert not quick_click(Kind.CLICK, Channel.PUSH, soon, sent)  # a push can be tapped at once
    assert not quick_click(Kind.OPEN, Channel.EMAIL, soon, sent)
    assert not quick_click(Kind.CLICK, Channel.EMAIL, soon, None)  # send time not known yet


def test_apple_address_rule() -> None:
    assert is_apple_proxy_address("17.58.101.7")
    assert not is_apple_proxy_address("172.16.0.1")
    assert not is_apple_proxy_address("170.1.2.3")
    assert not is_apple_proxy_address("2620:149::1")
    assert not is_apple_proxy_address(None)
    assert refine_with_address(Verdict.HUMAN, Kind.OPEN, "17.1.2.3") == Verdict.MACHINE_OPEN
    assert refine_with_address(Verdict.HUMAN, Kind.CLICK, "17.1.2.3") == Verdict.HUMAN
    assert refine_with_address(Verdict.HUMAN, Kind.OPEN, "203.0.113.9") == Verdict.HUMAN
    assert refine_with_address(Verdict.OTHER_BOT, Kind.OPEN, "17.1.2.3") == Verdict.OTHER_BOT


async def _report_time_rules(dsn: str) -> tuple[set, set, dict]:
    conn = await asyncpg.connect(dsn)
    try:
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (campaign_id) VALUES ('c-classify') RETURNING id")
        task = await conn.fetchval("INSERT INTO schedule_tasks (campaign, schedule_task_id) "
                                   "VALUES ($1, 't1') RETURNING id", campaign)
        sent = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
        await conn.execute("SELECT tracker_ensure_month_partition($1)", date(2025, 5, 1))
        # deliveries: 1 email sent, 2 push sent, 3 email with no outcome yet
        for delivery, channel, sent_at in [(1, Channel.EMAIL, sent), (2, Channel.PUSH, sent),
                                           (3, Channel.EMAIL, None)]:
            await conn.execute(
                "INSERT INTO deliveries (delivery_id, campaign, schedule_task, channel, user_id,"
                " sent_at, status) VALUES ($1, $2, $3, $4, 'u', $5, 1)",
                delivery, campaign, task, channel, sent_at)
        s = timedelta(seconds=1)
        events = [  # (name, delivery, seconds after send, kind, link)
            ("scan-1", 1, 3, Kind.CLICK, 1), ("scan-2", 1, 3.3, Kind.CLICK, 2),
            ("scan-3", 1, 3.6, Kind.CLICK, 3), ("open-early", 1, 2, Kind.OPEN, 0),
            ("person", 1, 600, Kind.CLICK, 1), ("person-again", 1, 660, Kind.CLICK, 2),
            ("push-tap", 2, 4, Kind.CLICK, 1), ("unknown-send", 3, 4, Kind.CLICK, 1),
        ]
        for name, delivery, after, kind, link in events:
            await conn.execute(
                "INSERT INTO events (ts, delivery_id, campaign, schedule_task, kind, flags,"
                " link_position, url_id) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                sent + after * s, delivery, campaign, task, kind, link, hash(name) % 1000)
        names = {hash(n) % 1000: n for n, *_ in events}
        quick = {names[r[0]] for r in await conn.fetch(
            f"SELECT e.url_id FROM events e JOIN deliveries d USING (delivery_id)"
            f" WHERE {QUICK_CLICK_SQL}")}
        burst = {names[r[0]] for r in await conn.fetch(
            f"SELECT e.url_id FROM events e WHERE {BURST_SQL}")}
        # the migration's columns take what describe() gives
        columns = {}
        for ident, ua in [(1, "Mozilla/5.0"), (2, "Microsoft Office/16.0 (Windows NT 10.0; "
                                                  "Microsoft Outlook 16.0.17328; Pro)")]:
            d = describe(ua)
            await conn.execute(
                "INSERT INTO user_agents (id, user_agent, client_family, os_family, device_family,"
                " device_class, is_bot) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ident, ua, d["client"], d["os"], d["device"], d["device_class"], d["is_bot"])
            columns[ua] = tuple(await conn.fetchrow(
                "SELECT client_family, device_class, is_bot FROM user_agents WHERE id = $1", ident))
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO user_agents (id, user_agent, device_class)"
                               " VALUES (3, 'x', 'toaster')")
        return quick, burst, columns
    finally:
        await conn.close()


def test_report_time_rules_in_postgresql(database: str) -> None:
    quick, burst, columns = asyncio.run(_report_time_rules(database))
    # scanner clicks within seconds of an email send; not the open, not the push tap,
    # not a click whose send time is not known, not the person ten minutes later
    assert quick == {"scan-1", "scan-2", "scan-3"}
    # three distinct links within a second, all three caught (the edge sees only the third)
    assert burst == {"scan-1", "scan-2", "scan-3"}
    assert columns["Mozilla/5.0"] == ("Apple Mail Privacy Protection", "proxy", True)
    assert columns["Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"] \
        == ("Outlook", "desktop", False)


def test_pattern_sets_compile_on_first_use_or_when_warmed() -> None:
    """Importing the classifier compiles nothing (a CLI command or a report pays no
    third of a second for crawlerdetect's lists); ``warm`` compiles every set, as
    the service does before it serves."""
    import subprocess
    import sys

    probe = ("from tracker.classify import patternset, warm\n"
             "assert patternset._ALL, 'no pattern set registered'\n"
             "assert all(s._database is None for s in patternset._ALL)\n"
             "warm()\n"
             "assert all(s._database is not None for s in patternset._ALL)\n"
             "from tracker.classify.crawlers import is_crawler\n"
             "assert is_crawler('Googlebot/2.1 (+http://www.google.com/bot.html)')\n")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_a_compiled_set_is_kept_on_disk_and_a_bad_copy_is_compiled_again(
        tmp_path: Path) -> None:
    """The second process loads what the first compiled (it never calls Hyperscan's
    compiler); a truncated file is compiled again and replaced; the matches are the
    same every time."""
    import os
    import subprocess
    import sys

    probe = ("import sys, hyperscan\n"
             "from tracker.classify import warm\n"
             "from tracker.classify.crawlers import is_crawler\n"
             "if sys.argv[1] == 'cached':\n"
             "    def refuse(*args, **kwargs): raise AssertionError('compiled again')\n"
             "    hyperscan.Database = refuse  # what a set compiles with, never loads with\n"
             "warm()\n"
             "assert is_crawler('Googlebot/2.1 (+http://www.google.com/bot.html)')\n"
             "assert not is_crawler('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)')\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    subprocess.run([sys.executable, "-c", probe, "compile"], check=True, env=env)
    kept = sorted((tmp_path / "tracker" / "hyperscan").glob("*.hsdb"))
    assert len(kept) >= 3
    subprocess.run([sys.executable, "-c", probe, "cached"], check=True, env=env)
    whole = kept[0].read_bytes()
    kept[0].write_bytes(whole[: len(whole) // 2])
    assert subprocess.run([sys.executable, "-c", probe, "cached"], env=env,
                          capture_output=True).returncode != 0  # the bad one was compiled
    subprocess.run([sys.executable, "-c", probe, "compile"], check=True, env=env)
    assert kept[0].read_bytes() == whole
