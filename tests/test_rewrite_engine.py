"""Issue 3, the engine in process: exact rewriting of real emails, text, edge cases.

The emails are the repository's own corpus (tests/data/emails) and, when it is beside
the repository, the shared upstream one (../shared/emails); see tests/rewrite_support."""

from __future__ import annotations

import html as htmllib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.rewrite_support import (
    Email,
    acceptable_untracked,
    check_identical,
    email_files,
    email_params,
    load_email,
    strip_pixel,
    untracked_http_links,
    without_no_track_markers,
)
from tests.support import SECRET_KEYS
from tracker.rewrite import MessageIds, Rewriter
from tracker.rewrite.links import add_utm
from tracker.rewrite.minting import Minter
from tracker.tokens import Channel, Purpose, TokenCodec, TokenData

PUBLIC = "https://t.example.com"
CODEC = TokenCodec(SECRET_KEYS.split(","))
IDS = MessageIds(9_876_543_210, 12, 345, Channel.EMAIL)


@pytest.fixture
def rewriter() -> Rewriter:
    return Rewriter(CODEC, PUBLIC)


def rewrite_html(rewriter: Rewriter, source: str, ids: MessageIds = IDS, **kw) -> str:
    return rewriter.rewrite(ids, html=source, **kw).html


@pytest.mark.parametrize("email", email_params())
def test_every_link_of_real_emails_is_tracked_and_nothing_else_changes(
        rewriter: Rewriter, email: Email) -> None:
    source = load_email(email, PUBLIC)
    result = rewriter.rewrite(IDS, html=source)
    body, pixels = strip_pixel(result.html, PUBLIC, CODEC)
    assert pixels == 1
    links = check_identical(without_no_track_markers(source), body, PUBLIC, CODEC)
    assert result.links == len(links)
    if email.links is not None:
        assert result.links == email.links, "the manifest's link count"
    for position, (_raw, data) in enumerate(links):
        assert (data.delivery_id, data.campaign, data.schedule_task, data.channel) == (
            IDS.delivery_id, IDS.campaign, IDS.schedule_task, IDS.channel)
        assert data.link_position == position
    left = [u for u in untracked_http_links(body, PUBLIC) if not acceptable_untracked(u)]
    assert sorted(left) == sorted(email.kept), f"trackable links left untouched: {left[:5]}"


def test_fixture_expectations_hold(rewriter: Rewriter) -> None:
    """Spot checks against what the shared MANIFEST.tsv says each file contains."""
    files = email_files()  # skips when ../shared/emails is missing

    def count(name: str) -> int:
        return rewriter.rewrite(IDS, html=load_email(next(
            p for p in files if p.name.startswith(name)))).links
    assert count("37-") == 78  # ~78 click-tracking links, open pixel in <head>
    assert count("36-") == 25  # newline between href= and its value
    assert count("25-") == 1  # <area href> in an image map
    assert count("02-") == 8  # 6 <a> + 2 <v:roundrect> inside <!--[if mso]>
    assert count("41-") == 0  # 1134 mailto: links
    assert count("42-") == 0  # escaped markup &lt;a href=...&gt; and mailto
    assert count("27-") == 0  # #fragments only


def test_minter_tokens_equal_codec_tokens() -> None:
    minter = Minter(CODEC)
    fields = IDS[:5]  # MessageIds without the tracking mode
    header = Minter.header(*fields)
    url = "https://例え.jp/パス?q=値&x=1"
    assert minter.click(header, 7, url.encode()) == CODEC.mint(
        Purpose.CLICK, TokenData(*fields, link_position=7, url=url))
    assert minter.open(header) == CODEC.mint(Purpose.OPEN, TokenData(*fields))
    assert minter.unsubscribe(header) == CODEC.mint(Purpose.UNSUBSCRIBE, TokenData(*fields))
    test_header = Minter.header(1, 2, 3, Channel.LINE, True)
    assert CODEC.verify(Purpose.OPEN, minter.open(test_header)) == TokenData(1, 2, 3, 3, True)


def test_entities_quotes_and_case(rewriter: Rewriter) -> None:
    source = ("<A HREF='https://a.example/x?a=1&amp;b=2'>x</A>"
              '<a class=c href=https://b.example/y?p=%20&q>y</a>'
              '<a href = "\n https://c.example/é?q=&quot;1&quot; ">z</a>')
    out = rewrite_html(rewriter, source)
    body, _ = strip_pixel(out, PUBLIC, CODEC)
    urls = [d.url for _, d in check_identical(source, body, PUBLIC, CODEC)]
    assert urls == ["https://a.example/x?a=1&b=2", "https://b.example/y?p=%20&q",
                    'https://c.example/é?q="1"']
    assert "<A HREF='" + PUBLIC + "/c/" in out and "class=c href=" + PUBLIC in out


def test_left_alone(rewriter: Rewriter) -> None:
    source = "".join([
        '<a href="mailto:a@b.c?subject=x&amp;body=y">m</a>', '<a href="tel:+81312345678">t</a>',
        '<a href="sms:123">s</a>', '<a href="#top">f</a>', '<a href="/relative">r</a>',
        '<a href="javascript:alert(1)">j</a>', '<a href="https://x.example/{{id}}">p</a>',
        '<a href="https://x.example/?u=*|EMAIL|*">mc</a>', '<a href="%%view_url%%">v</a>',
        f'<a href="{PUBLIC}/c/abc.def">own</a>', '<link href="https://fonts.example/css">',
        '<base href="https://base.example/">', "<!-- <a href=\"https://commented.example\"> -->",
        "<p>&lt;a href=&quot;https://escaped.example&quot;&gt;</p>",
        '<script>var a = "<a href=\'https://script.example\'>";</script>',
        "<style>a[href='https://style.example']{}</style>", "<body></body>",
    ])
    result = rewriter.rewrite(IDS, html=source)
    assert result.links == 0
    body, pixels = strip_pixel(result.html, PUBLIC, CODEC)
    assert pixels == 1 and body == source


def test_long_and_unsafe_urls_are_left_with_a_warning(rewriter: Rewriter) -> None:
    long_url = "https://x.example/" + "a" * 5000
    source = f'<a href="{long_url}">l</a><a href="https://ok.example/">ok</a>'
    result = rewriter.rewrite(IDS, html=source)
    assert result.links == 1 and long_url in result.html
    assert any("5018 characters" in w for w in result.warnings)


def test_untracked_marker_is_stripped(rewriter: Rewriter) -> None:
    source = ('<a href="https://a.example/" data-track="off">a</a>'
              '<a data-track="OFF" href="https://b.example/">b</a>'
              '<a href="https://c.example/" data-track="on">c</a>')
    result = rewriter.rewrite(IDS, html=source)
    body, _ = strip_pixel(result.html, PUBLIC, CODEC)
    assert result.links == 1
    assert body.startswith('<a href="https://a.example/">a</a><a href="https://b.example/">b</a>')
    assert "data-track=\"on\"" in body


def test_conditional_comments_and_vml(rewriter: Rewriter) -> None:
    source = ('<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
              'href="https://vml.example/?a=1&amp;b=2" arcsize="10%"><w:anchorlock/>'
              '</v:roundrect><![endif]--><!--[if !mso]><!-->'
              '<a href="https://html.example/">b</a><!--<![endif]-->'
              "<!-- a plain comment <a href=\"https://no.example/\"> -->")
    result = rewriter.rewrite(IDS, html=source)
    body, _ = strip_pixel(result.html, PUBLIC, CODEC)
    links = check_identical(source, body, PUBLIC, CODEC)
    assert [d.url for _, d in links] == ["https://vml.example/?a=1&b=2", "https://html.example/"]


def test_pixel_goes_before_the_last_body_end_or_at_the_end(rewriter: Rewriter) -> None:
    out = rewrite_html(rewriter, "<html><BODY><p>x</p></BODY>\n</html>\n")
    assert out.startswith("<html><BODY><p>x</p><img src=\"" + PUBLIC + "/o/")
    assert out.endswith("/></BODY>\n</html>\n")
    assert 'width="1" height="1" alt="" border="0"' in out
    out = rewrite_html(rewriter, "<p>fragment</p>")
    assert out.startswith("<p>fragment</p><img ")
    pushed = rewriter.rewrite(IDS._replace(channel=Channel.PUSH), html="<body>x</body>")
    assert pushed.html == "<body>x</body>" and not pushed.has_pixel and pushed.headers == {}


def test_unsubscribe_placeholder_and_headers(rewriter: Rewriter) -> None:
    result = rewriter.rewrite(
        IDS, html='<a href="{{unsubscribe_url}}">stop</a> <a href="{{ unsubscribe_url }}">s</a>',
        text="Unsubscribe: {{unsubscribe_url}}", headers={"X-Campaign": "c1"})
    unsubscribe = result.headers["List-Unsubscribe"][1:-1]
    assert result.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert result.headers["X-Campaign"] == "c1"
    assert unsubscribe.startswith(PUBLIC + "/u/")
    assert CODEC.verify(Purpose.UNSUBSCRIBE, unsubscribe.rsplit("/", 1)[1]) == TokenData(*IDS[:5])
    assert result.html.count(unsubscribe) == 2 and result.links == 0
    assert result.text == f"Unsubscribe: {unsubscribe}"


def test_text_urls(rewriter: Rewriter) -> None:
    text = ("See https://a.example/x. Or (https://b.example/y), <https://c.example/z?q=1&r=2>\n"
            "Wiki https://en.example/Foo_(bar)! 詳細はhttps://jp.example/page をご覧ください。"
            "https://d.example/ですよ mailto:x@y.z ftp://f.example "
            "https://e.example/{{id}} http:// done")
    result = rewriter.rewrite(IDS._replace(channel=Channel.LINE), text=text)
    assert result.headers == {} and not result.has_pixel
    parts = text
    tokens = [t for t in result.text.split() if t.startswith(PUBLIC)]
    assert result.links == 6
    urls = []
    for token_text in result.text.split(PUBLIC + "/c/")[1:]:
        token = token_text[:token_text.index(".") + 23]
        urls.append(CODEC.verify(Purpose.CLICK, token).url)
    assert urls == ["https://a.example/x", "https://b.example/y", "https://c.example/z?q=1&r=2",
                    "https://en.example/Foo_(bar)", "https://jp.example/page",
                    "https://d.example/"]
    for url in urls:
        parts = parts.replace(url, "@", 1)
    rebuilt = result.text
    for token_text in result.text.split(PUBLIC + "/c/")[1:]:
        token = token_text[:token_text.index(".") + 23]
        rebuilt = rebuilt.replace(PUBLIC + "/c/" + token, "@", 1)
    assert rebuilt == parts and tokens


def test_utm_is_added_once(rewriter: Rewriter) -> None:
    utm = (("utm_source", "news"), ("utm_medium", "email"))
    assert add_utm("https://x.example/p?utm_source=own&a=1#frag", utm) == (
        "https://x.example/p?utm_source=own&a=1&utm_medium=email#frag")
    assert add_utm("https://x.example/", utm) == (
        "https://x.example/?utm_source=news&utm_medium=email")
    result = rewriter.rewrite(IDS, html='<a href="https://x.example/?a=1&amp;b=2">x</a>',
                              utm=utm)
    token = result.html.split("/c/")[1].split('"')[0]
    assert CODEC.verify(Purpose.CLICK, token).url == (
        "https://x.example/?a=1&b=2&utm_source=news&utm_medium=email")


def test_malformed_html_never_crashes(rewriter: Rewriter) -> None:
    for source in ['<a href="https://a.example/">unclosed <b><i>', "<!-- unclosed comment",
                   '<a href="https://a.example/', "<a href='x'<b>", "</>", "<!", "<![CDATA[",
                   '<div><a href="https://b.example/">x</div></body></html></body>',
                   "<a href=https://c.example/>x", "\x00<a\x00href=x>", "<" * 1000,
                   '<![foo <a href="https://d.example/">', "<![ ]]><!DOCTYPE [x]>"]:
        result = rewriter.rewrite(IDS, html=source)
        body, pixels = strip_pixel(result.html, PUBLIC, CODEC)
        assert pixels == 1
        check_identical(source, body, PUBLIC, CODEC)


def test_ten_thousand_links_and_a_large_body(rewriter: Rewriter) -> None:
    source = "<body>" + "".join(f'<a href="https://x.example/{i}">{i}</a>\n'
                                for i in range(10_000)) + "</body>"
    result = rewriter.rewrite(IDS, html=source)
    assert result.links == 10_000
    body, _ = strip_pixel(result.html, PUBLIC, CODEC)
    links = check_identical(source, body, PUBLIC, CODEC)
    assert [d.link_position for _, d in links[:3]] == [0, 1, 2]
    assert links[-1][1].url == "https://x.example/9999"
    assert links[-1][1].link_position == 9999
    big = "<p>" + "x" * 10_000_000 + '<a href="https://big.example/">b</a></p>'
    assert rewriter.rewrite(IDS, html=big).links == 1


def test_compiled_once_per_body(rewriter: Rewriter) -> None:
    source = "<body>" + '<a href="https://x.example/">x</a>' * 3 + "</body>"
    first = rewriter.rewrite(IDS, html=source)
    second = rewriter.rewrite(IDS._replace(delivery_id=IDS.delivery_id + 1),
                              html="".join(list(source)))  # equal, not the same object
    assert rewriter.cache.misses == 1 and rewriter.cache.hits == 1
    assert first.html != second.html
    assert htmllib.unescape(first.html).count("/c/") == 3


def test_json_filling_equals_json_dumps(rewriter: Rewriter) -> None:
    import json

    nasty = ('<p title="a\\b">"quoted" \u2028 \x00\x1f \U0001f600 日本 \ud800 </p>'
             '<a href="https://x.example/?q=&quot;">x</a>{{unsubscribe_url}}</body>')
    for ids in (IDS, IDS._replace(channel=Channel.PUSH)):
        plain = rewriter.rewrite(ids, html=nasty, text="t https://y.example/ \"q\"")
        encoded = rewriter.rewrite(ids, html=nasty, text="t https://y.example/ \"q\"",
                                   as_json=True)
        assert json.loads(encoded.html_json) == plain.html
        assert json.loads(encoded.text_json) == plain.text
        assert encoded.html_json.isascii() and encoded.links == plain.links == 2
    assert rewriter.rewrite(IDS, text="x", as_json=True).html_json == b"null"


_PIECES = ["<", ">", "!", "-", "[", "]", "a", " ", "href", "=", '"', "'", "&", "#", ";", "/",
           "?", "if", "mso", "script", "style", "v:", "https://a.example/", "\n", "<!--",
           "-->", "<![", "]]>", "&amp;", "&#x", "body", "\x00", "é", "<a ", "</", "<?", "area",
           '<a href="https://q.example/', "<!--[if mso]>", "<![endif]-->", "<v:rect ", "\r"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60).map("".join))
@example('<a href="https://q.example/\x00">')  # a raw NUL in a link: U+FFFD, as browsers read it
def test_any_markup_soup_keeps_every_other_byte(source: str) -> None:
    rewriter = Rewriter(CODEC, PUBLIC)
    result = rewriter.rewrite(IDS, html=source)
    body, pixels = strip_pixel(result.html, PUBLIC, CODEC)
    assert pixels == 1
    assert len(check_identical(source, body, PUBLIC, CODEC)) == result.links
