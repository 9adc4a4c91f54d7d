"""The corpus's very large newsletter (about 1.5 MB, hundreds of links), built on demand.

Generated rather than stored so the repository does not carry a megabyte of markup;
the output is the same on every run (fixed seed), so the manifest can state its
link count. It repeats, at the scale of a real weekly digest, the hazards of the
smaller files: VML buttons in conditional comments, ``&amp;`` in query strings,
image maps, ``mailto:``/``tel:`` links, placeholders, fragments and Japanese text.
"""

from __future__ import annotations

import random

SECTIONS = 120
_WORDS = ("market", "city", "weather", "garden", "travel", "recipe", "season", "river",
          "station", "library", "museum", "festival", "harbour", "bakery", "cinema", "island",
          "mountain", "bridge", "coffee", "market", "lantern")
_JAPANESE = ("春の新作が入荷しました。", "週末限定のセールを開催します。",
             "店舗の営業時間が変わります。", "会員様限定のクーポンをお届けします。",
             "人気商品が再入荷しました。")
_PARAGRAPH = ('<p style="margin:0 0 12px 0;font-family:Georgia,\'Times New Roman\',serif;'
              'font-size:16px;line-height:24px;color:#333333;mso-line-height-rule:exactly;">'
              "{}</p>\n")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + "."


def _section(i: int, rng: random.Random) -> str:
    url = (f"https://news.example.com/{2026 - i % 3}/{i:03d}/story"
           f"?utm_source=digest&amp;utm_medium=email&amp;pos={i}")
    parts = [
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;mso-table-lspace:0pt;mso-table-rspace:0pt;" id="s{i}">\n'
        f'<tr><td class="story" style="padding:24px 32px 8px 32px;background-color:#ffffff;">\n',
        f'<a href="{url}"><img src="https://img.example.com/stories/{i}.jpg" width="536" '
        f'alt="Story {i}" style="display:block;width:100%;height:auto;border:0;"></a>\n',
        f'<h2 style="margin:16px 0 8px 0;font-size:22px;"><a href="{url}&amp;part=title" '
        f'style="color:#111111;text-decoration:none;">Story {i}: {_sentence(rng)}</a></h2>\n',
    ]
    for _ in range(22):
        parts.append(_PARAGRAPH.format(" ".join(_sentence(rng) for _ in range(4))))
    if i % 3 == 0:
        parts.append(_PARAGRAPH.format(_JAPANESE[i % len(_JAPANESE)] * 6))
    parts.append(
        f'<!--[if mso]>\n<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
        f'href="https://news.example.com/more/{i}?from=mso&amp;s={i}" style="height:40px;'
        f'width:200px;v-text-anchor:middle;" arcsize="10%" fillcolor="#0f766e" stroke="f">'
        f'<center style="color:#ffffff;">Read more</center></v:roundrect>\n<![endif]-->\n'
        f'<!--[if !mso]><!--><a href="https://news.example.com/more/{i}?from=html&amp;s={i}" '
        f'style="background:#0f766e;color:#ffffff;padding:10px 20px;display:inline-block;">'
        f"Read more</a><!--<![endif]-->\n")
    if i % 10 == 0:
        parts.append(
            f'<img src="https://img.example.com/maps/{i}.png" usemap="#m{i}" width="536" alt="">\n'
            f'<map name="m{i}"><area shape="rect" coords="0,0,268,100" '
            f'href="https://news.example.com/map/{i}/left?x=1&amp;y=2">'
            f'<area shape="rect" coords="268,0,536,100" href="https://news.example.com/map/{i}/right">'
            f'<area shape="default" href="#s{i}"></map>\n')
    if i % 7 == 0:
        parts.append(f'<p>Tips: <a href="mailto:desk+{i}@news.example.com?subject=Story%20{i}">'
                     f'write to the desk</a> or call <a href="tel:+44-20-7946-{i:04d}">us</a>'
                     ".</p>\n")
    if i % 5 == 0:
        parts.append(f'<p><a href="https://news.example.com/u/{{{{subscriber_id}}}}/saved/{i}">'
                     f"Save for later</a> (your own link, filled by the sender).</p>\n")
    parts.append('<p><a href="#top">Back to top</a></p>\n</td></tr>\n</table>\n')
    return "".join(parts)


def build() -> str:
    """The newsletter's HTML."""
    rng = random.Random(2026)
    head = ('<!DOCTYPE html>\n<html xmlns:v="urn:schemas-microsoft-com:vml">\n<head>\n'
            '<meta charset="utf-8">\n<title>The Weekly Digest</title>\n</head>\n'
            '<body style="margin:0;padding:0;background:#eeeeee;">\n<a name="top"></a>\n'
            '<table role="presentation" width="600" align="center"><tr><td>\n'
            '<p><a href="https://news.example.com/web-version?issue=420&amp;u=%%uid%%">'
            "View in a browser</a></p>\n<ul>\n")
    toc = "".join(f'<li><a href="#s{i}">Story {i}</a></li>\n' for i in range(SECTIONS))
    body = "".join(_section(i, rng) for i in range(SECTIONS))
    foot = ('</ul>\n' + body + '<p style="font-size:12px;">'
            '<a href="https://news.example.com/preferences">Preferences</a> | '
            '<a href="https://news.example.com/privacy">Privacy</a></p>\n'
            "</td></tr></table>\n</body>\n</html>\n")
    return head + toc + foot


if __name__ == "__main__":
    import sys

    sys.stdout.write(build())
