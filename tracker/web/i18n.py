"""Japanese and English texts of the report pages, and the choice between them.

Many of the marketers reading these pages are Japanese, so every label, definition
and message exists in both languages. The language is ``?lang=ja|en`` when given
(remembered in a cookie so one click on the switch lasts), then that cookie, then
the browser's ``Accept-Language``, then English.
"""

from __future__ import annotations

from starlette.requests import Request

LANGUAGES = ("en", "ja")
COOKIE = "tracker_lang"

#: key -> (English, Japanese). Definitions say whether bots and machine opens count.
TEXTS: dict[str, tuple[str, str]] = {
    "app": ("Tracker reports", "トラッカー レポート"),
    "campaigns": ("Campaigns", "キャンペーン"),
    "project": ("Project", "プロジェクト"),
    "sign_in": ("Sign in", "サインイン"),
    "sign_out": ("Sign out", "サインアウト"),
    "sign_in_lead": ("Sign in once with the tracker's API key to read the reports.",
                     "レポートを見るには、トラッカーの API キーで一度サインインしてください。"),
    "api_key": ("API key", "API キー"),
    "api_key_hint": ("The key printed when the tracker started, or TRACKER_API_KEY.",
                     "トラッカー起動時に表示されたキー、または TRACKER_API_KEY の値です。"),
    "wrong_key": ("That API key is not right. Check for a missing character and try again "
                  "(it is the key printed at start or set in TRACKER_API_KEY).",
                  "API キーが正しくありません。文字の抜けがないか確認して、もう一度お試しください"
                  "(起動時に表示されたキー、または TRACKER_API_KEY の値です)。"),
    "missing_key": ("Enter the API key to sign in.",
                    "サインインするには API キーを入力してください。"),
    "expired": ("Your session has ended; please sign in again.",
                "セッションの有効期限が切れました。もう一度サインインしてください。"),
    "bad_request": ("That request could not be read", "リクエストを読み取れませんでした"),
    "not_found": ("Not found", "見つかりません"),
    "back": ("Back to the campaigns", "キャンペーン一覧へ戻る"),
    # period picker
    "period": ("Period", "期間"),
    "last_7": ("Last 7 days", "過去 7 日間"),
    "last_30": ("Last 30 days", "過去 30 日間"),
    "last_90": ("Last 90 days", "過去 90 日間"),
    "custom": ("Custom range", "期間を指定"),
    "from": ("From", "開始日"),
    "to": ("To", "終了日"),
    "apply": ("Show", "表示"),
    "dates_in": ("Dates are in {tz}.", "日付は {tz} 基準です。"),
    "schedule_task": ("Schedule task", "配信タスク"),
    "all": ("All", "すべて"),
    "campaign": ("Campaign", "キャンペーン"),
    "channel": ("Channel", "チャネル"),
    "include_bots": ("Include machine opens and bot clicks",
                     "機械的な開封とボットのクリックを含める"),
    # list
    "status": ("Status", "ステータス"),
    "last_send": ("Last send", "最終配信"),
    "trend": ("Clicks per day", "日別クリック"),
    "trend_def": ("Clicks by people per day in the period (bots excluded).",
                  "期間中の日別クリック数(人によるもの、ボットを除く)。"),
    "no_campaigns": ("No campaigns yet. They appear here once PUT /v1/campaigns or the first "
                     "message creates them.",
                     "キャンペーンはまだありません。PUT /v1/campaigns または最初のメッセージで"
                     "作成されるとここに表示されます。"),
    "never": ("not sent yet", "未配信"),
    # channels
    "ch_email": ("Email", "メール"),
    "ch_push": ("App push", "アプリプッシュ"),
    "ch_line": ("LINE", "LINE"),
    # figures
    "targets": ("Targets", "配信対象"),
    "deliveries": ("Delivered", "配信成功"),
    "delivered_users": ("Delivered users", "配信成功ユーザー"),
    "opens": ("Opens", "開封数"),
    "open_users": ("Unique opens", "開封ユーザー"),
    "clicks": ("Clicks", "クリック数"),
    "click_users": ("Unique clicks", "クリックユーザー"),
    "open_rate": ("Open rate", "開封率"),
    "click_rate": ("Click rate", "クリック率"),
    "click_to_open_rate": ("Click-to-open rate", "開封後クリック率"),
    "conversions": ("Conversions (CV)", "コンバージョン(CV)"),
    "conversion_users": ("Converted users", "CV ユーザー"),
    "conversion_rate": ("CV rate", "CV 率"),
    "machine_opens": ("Machine opens", "機械的な開封"),
    "bot_clicks": ("Bot clicks", "ボットのクリック"),
    "bounces": ("Bounces (hard)", "バウンス(ハード)"),
    "soft_bounces": ("Soft bounces", "ソフトバウンス"),
    "failures": ("Failures", "配信失敗"),
    "fail_count": ("Fail count", "失敗数"),
    "suppressed": ("Suppressed", "配信除外"),
    "bounce_rate": ("Bounce rate", "バウンス率"),
    "unsubscribes": ("Unsubscribes", "配信停止"),
    "resubscribes": ("Resubscribes", "配信再開"),
    "not_measurable": ("not measurable", "計測不可"),
    "not_measurable_why": ("Opens are measured only by the pixel in HTML email; LINE, app push "
                           "and text-only mail have none, so there is no open figure (not 0).",
                           "開封は HTML メールの計測用画像でのみ計測します。LINE・アプリプッシュ・"
                           "テキストメールには無いため、開封は 0 ではなく計測不可です。"),
    "not_measured": ("not measured", "未計測"),
    "not_measured_why": ("No conversion tracking is configured for this campaign, or no "
                         "conversion could be linked to its deliveries.",
                         "このキャンペーンにはコンバージョン計測が設定されていないか、"
                         "配信に紐づくコンバージョンがありません。"),
    "dash": ("–", "–"),
    # definitions (hover)
    "def_targets": ("Deliveries sent in the period with an outcome: delivered + bounces + soft "
                    "bounces + failures. Suppressed users are not targets.",
                    "期間中に送信され結果が届いた配信: 配信成功 + バウンス + ソフトバウンス + "
                    "配信失敗。配信除外のユーザーは含みません。"),
    "def_deliveries": ("Deliveries sent in the period that were delivered.",
                       "期間中に送信され、配信に成功した件数。"),
    "def_delivered_users": ("Distinct users with a delivery delivered in the period.",
                            "期間中に配信に成功したユーザー数(重複なし)。"),
    "def_opens": ("Every open made in the period, whenever the message was sent. People only: "
                  "machine opens (mail privacy prefetch) are excluded unless included below.",
                  "期間中の全開封数(送信日に関係なく)。人による開封のみで、機械的な開封"
                  "(メールのプライバシー保護による先読み)は含めない設定では除外します。"),
    "def_open_users": ("Distinct users of deliveries sent in the period who opened in the "
                       "period. Machine opens excluded unless included.",
                       "期間中に送信された配信のうち、期間中に開封したユーザー数。"
                       "機械的な開封は除外(含める設定を除く)。"),
    "def_clicks": ("Every click made in the period, whenever the message was sent. People "
                   "only: bot and security-scanner clicks are excluded unless included.",
                   "期間中の全クリック数(送信日に関係なく)。人によるクリックのみで、ボットや"
                   "セキュリティスキャナーのクリックは除外(含める設定を除く)。"),
    "def_click_users": ("Distinct users of deliveries sent in the period who clicked in the "
                        "period. Bot clicks excluded unless included.",
                        "期間中に送信された配信のうち、期間中にクリックしたユーザー数。"
                        "ボットのクリックは除外(含める設定を除く)。"),
    "def_open_rate": ("Unique opens / delivered users. Machine opens excluded unless included.",
                      "開封ユーザー ÷ 配信成功ユーザー。機械的な開封は除外(含める設定を除く)。"),
    "def_click_rate": ("Unique clicks / delivered users. Bot clicks excluded unless included.",
                       "クリックユーザー ÷ 配信成功ユーザー。ボットのクリックは除外"
                       "(含める設定を除く)。"),
    "def_click_to_open_rate": ("Unique clicks / unique opens.",
                               "クリックユーザー ÷ 開封ユーザー。"),
    "def_conversions": ("Conversions attributed to this campaign's clicks in the period.",
                        "期間中にこのキャンペーンのクリックに紐づいたコンバージョン数。"),
    "def_conversion_rate": ("Converted users / delivered users.",
                            "CV ユーザー ÷ 配信成功ユーザー。"),
    "def_machine_opens": ("Opens by machines (e.g. Apple Mail Privacy Protection prefetch), "
                          "reported beside the opens by people.",
                          "機械による開封(Apple のメールプライバシー保護の先読みなど)。"
                          "人による開封とは別に表示します。"),
    "def_bot_clicks": ("Clicks by bots and security scanners, reported beside the clicks by "
                       "people.", "ボットやセキュリティスキャナーによるクリック。人による"
                       "クリックとは別に表示します。"),
    "def_bounces": ("Hard bounces of deliveries sent in the period; these users are suppressed "
                    "from later sends.", "期間中に送信された配信のハードバウンス。"
                    "以後の配信から除外されます。"),
    "def_soft_bounces": ("Temporary bounces (mailbox full, message too large...).",
                         "一時的なバウンス(メールボックス容量超過など)。"),
    "def_failures": ("Deliveries that failed at send time for any other error.",
                     "その他のエラーで送信時に失敗した配信。"),
    "def_fail_count": ("Bounces + soft bounces + failures = targets - delivered.",
                       "バウンス + ソフトバウンス + 配信失敗 = 配信対象 - 配信成功。"),
    "def_suppressed": ("Users not sent to because they were on the suppression list (hard "
                       "bounce or unsubscribe). Not failures.",
                       "配信除外リスト(ハードバウンスや配信停止)により送信しなかったユーザー。"
                       "失敗には含みません。"),
    "def_bounce_rate": ("Hard bounces / targets.", "ハードバウンス ÷ 配信対象。"),
    "def_unsubscribes": ("Unsubscribes made in the period.", "期間中の配信停止数。"),
    "def_resubscribes": ("Users who subscribed again in the period.", "期間中に配信を再開した数。"),
    # sections
    "per_day": ("Per day", "日別"),
    "per_day_def": ("Bars: delivered per send day. Lines: opens and clicks by people per day.",
                    "棒: 送信日ごとの配信成功数。線: 日ごとの人による開封数とクリック数。"),
    "funnel": ("Funnel", "ファネル"),
    "funnel_def": ("Distinct users of deliveries sent in the period.",
                   "期間中に送信された配信のユーザー数(重複なし)。"),
    "links": ("Links", "リンク"),
    "links_def": ("Clicks and distinct clicking users per link in the period, whenever sent.",
                  "期間中のリンク別クリック数とクリックユーザー数(送信日に関係なく)。"),
    "url": ("Link URL", "リンク URL"),
    "tasks": ("Schedule tasks", "配信タスク"),
    "outcomes": ("Outcomes", "配信結果"),
    "reconcile": ("Targets = delivered + bounces + soft bounces + failures",
                  "配信対象 = 配信成功 + バウンス + ソフトバウンス + 配信失敗"),
    "error_codes": ("Error codes", "エラーコード"),
    "category": ("Category", "カテゴリ"),
    "code": ("Code", "コード"),
    "kind": ("Kind", "種別"),
    "count": ("Count", "件数"),
    "top_messages": ("Top messages", "主なメッセージ"),
    "cat_bounce": ("Bounce", "バウンス"),
    "cat_push": ("App push", "アプリプッシュ"),
    "cat_other": ("Other", "その他"),
    "kind_soft": ("soft", "ソフト"),
    "kind_hard": ("hard", "ハード"),
    "no_errors": ("No errors in this period.", "この期間にエラーはありません。"),
    "no_links": ("No clicks in this period.", "この期間にクリックはありません。"),
    "no_data": ("No data in this period.", "この期間のデータはありません。"),
    "date": ("Date", "日付"),
    "days_table": ("Per-day figures", "日別の数値"),
    "devices": ("Clients and devices", "クライアントとデバイス"),
    "devices_def": ("Opens and clicks as event counts per client, OS and device. One person may "
                    "read one message on several devices, so these are not people.",
                    "クライアント・OS・デバイス別の開封数とクリック数(イベント数)。1 人が"
                    "複数の端末で読むことがあるため、人数ではありません。"),
    "devices_unknown": ("The client and device breakdown is not available yet.",
                        "クライアントとデバイスの内訳はまだありません。"),
    "csv": ("CSV", "CSV"),
    "csv_all": ("Download all as CSV", "すべて CSV でダウンロード"),
    "csv_title": ("Download this table as CSV, with the filters shown",
                  "表示中の条件でこの表を CSV ダウンロード"),
    "campaign_report": ("Campaign report", "キャンペーンレポート"),
    "project_report": ("Project report", "プロジェクトレポート"),
    "language": ("日本語", "English"),
}


def t(lang: str, key: str, **values: str) -> str:
    """The text for ``key`` in ``lang``; ``values`` fill {placeholders}."""
    english, japanese = TEXTS[key]
    text = japanese if lang == "ja" else english
    return text.format(**values) if values else text


def from_accept_language(header: str) -> str:
    """The first of our languages the browser asks for, by its q-values."""
    best, best_q = "en", -1.0
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and q > 0 and q > best_q:  # ties: the earlier one
            best, best_q = base, q
    return best


def choose(request: Request) -> tuple[str, bool]:
    """(language, whether it was switched now and should be remembered)."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, True
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered, False
    return from_accept_language(request.headers.get("accept-language", "")), False
