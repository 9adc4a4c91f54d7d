"""Issue 9 end to end: every hit is classified as it arrives and the verdict is
stored on its event row (bits 1-3 of ``events.flags``), never the address."""

from __future__ import annotations

from tests.support import SECRET_KEYS, Service, event_count, mint_url, query, wait_for
from tracker.classify import Verdict, from_flags
from tracker.tokens import Purpose, TokenCodec

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " Chrome/120.0.0.0 Safari/537.36")
GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0"
               " (via ggpht.com GoogleImageProxy)")
APPLE_MPP = "Mozilla/5.0"
CRAWLER = "Googlebot/2.1 (+http://www.google.com/bot.html)"


def test_each_hit_carries_its_verdict(module_service: Service) -> None:
    cases = [
        ("open", CHROME, "GET", Verdict.HUMAN),
        ("open", GMAIL_PROXY, "GET", Verdict.PROXIED_OPEN),
        ("open", APPLE_MPP, "GET", Verdict.MACHINE_OPEN),
        ("open", CRAWLER, "GET", Verdict.OTHER_BOT),
        ("open", CHROME, "HEAD", Verdict.MACHINE_OPEN),
        ("click", CHROME, "GET", Verdict.HUMAN),
        ("click", CHROME, "HEAD", Verdict.SCANNER_CLICK),
        ("click", CRAWLER, "GET", Verdict.OTHER_BOT),
    ]
    with module_service.client() as http:
        for index, (purpose, agent, method, expected) in enumerate(cases):
            user = f"verdict-{index}"
            url = mint_url(module_service, purpose, url="https://example.com/v", user=user)
            http.request(method, url, headers={"User-Agent": agent})
            rows = wait_for(lambda user=user: query(
                module_service.dsn,
                "SELECT e.flags FROM events e JOIN deliveries d USING (delivery_id)"
                " WHERE d.user_id = $1", user))
            assert from_flags(rows[0]["flags"]) == expected, (purpose, agent, method)


def test_one_delivery_clicking_many_links_within_a_second_is_a_scanner(
        module_service: Service) -> None:
    before = event_count(module_service.dsn, 2)
    url = mint_url(module_service, "click", url="https://example.com/0", user="burst")
    # the same delivery's other links: its token with other positions and targets
    codec = TokenCodec(SECRET_KEYS.split(","))
    first = codec.verify(Purpose.CLICK, url.rsplit("/", 1)[1])
    links = [codec.mint(Purpose.CLICK, first._replace(link_position=i,
                                                       url=f"https://example.com/{i}"))
             for i in range(5)]
    with module_service.client() as http:
        for token in links:
            assert http.get(f"/c/{token}", headers={"User-Agent": CHROME}).status_code == 302
    wait_for(lambda: event_count(module_service.dsn, 2) == before + 5)
    rows = query(module_service.dsn,
                 "SELECT link_position, flags FROM events WHERE delivery_id = $1"
                 " ORDER BY link_position", first.delivery_id)
    verdicts = [from_flags(r["flags"]) for r in rows]
    # the first two clicks look human; from the third within a second, a burst
    assert verdicts[:2] == [Verdict.HUMAN, Verdict.HUMAN]
    assert verdicts[2:] == [Verdict.SCANNER_CLICK] * 3


def test_no_address_is_stored(module_service: Service) -> None:
    columns = query(module_service.dsn,
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND (column_name LIKE '%ip%'"
                    " OR column_name LIKE '%addr%')")
    assert [tuple(c) for c in columns] == []


def test_a_new_user_agent_is_described_once_when_it_lands(module_service: Service) -> None:
    iphone = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
              " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
    with module_service.client() as http:
        http.get(mint_url(module_service, "open", user="described"),
                 headers={"User-Agent": iphone})
    row = wait_for(lambda: query(
        module_service.dsn, "SELECT client_family, os_family, device_class, is_bot"
        " FROM user_agents WHERE user_agent = $1", iphone))[0]
    assert (row["os_family"], row["device_class"], row["is_bot"]) == ("iOS", "mobile", False)
    assert row["client_family"] == "Mobile Safari"
