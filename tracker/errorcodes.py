"""The error codes of delivery outcomes (F9), as data.

One table instead of ``if``s scattered over ingest and reports (docs/figures.md#f9): three
categories (bounce, app push, other), each code's kind (soft or hard bounce, or
none) and a short meaning in English and Japanese. The rows are the list of the
reporting FAQ the rules come from, plus two SES bounce subtypes it leaves out
(``Transient:AttachmentRejected``, ``Undetermined:Undetermined``), so every code
the SES mapping names is known. Codes not in the table are kept verbatim and
reported under "other" (F9), whatever they look like: an SES subtype SES adds one
day (``Permanent:Whatever``) too. Such a code still has a kind when its SES bounce
type says it (``Permanent:`` hard, ``Transient:`` and ``Undetermined:`` soft), so a
sender cannot post it under the other status; any other unknown code has none.

What SES notifications become (``tracker.api.ses``): ``Permanent`` bounces are hard,
``Transient`` and ``Undetermined`` ones soft (``Undetermined:Undetermined``: SES could
not tell why, never a reason to suppress); a ``Reject`` is a failure coded
``FAILED``, a ``Rendering Failure`` one coded ``RENDERING_FAILURE``; a
``DeliveryDelay`` is no outcome at all (the Delivery or Bounce that follows is).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Category = Literal["bounce", "push", "other"]
BounceKind = Literal["soft", "hard"] | None


class ErrorCode(NamedTuple):
    code: str
    category: Category
    kind: BounceKind
    meaning_en: str
    meaning_ja: str


ERROR_CODES: tuple[ErrorCode, ...] = (
    # bounce errors (the FAQ's message for each is "Bounced")
    ErrorCode("Transient:General", "bounce", "soft",
              "Temporary bounce.", "一時的なバウンス。"),
    ErrorCode("Transient:MailboxFull", "bounce", "soft",
              "The recipient's mailbox is temporarily full.",
              "一時的に送信先のメールボックスが満杯。"),
    ErrorCode("Transient:ContentRejected", "bounce", "soft",
              "The content was temporarily rejected.",
              "一時的にコンテンツの内容が拒否された。"),
    ErrorCode("Transient:MessageTooLarge", "bounce", "soft",
              "The message was too large.", "メール容量が大きすぎた。"),
    ErrorCode("Transient:AttachmentRejected", "bounce", "soft",
              "An attachment was rejected by the receiving server.",
              "添付ファイルが受信側サーバーに拒否された。"),
    ErrorCode("Undetermined:Undetermined", "bounce", "soft",
              "The bounce reason could not be determined.",
              "バウンスの理由を特定できなかった。"),
    ErrorCode("Permanent:General", "bounce", "hard",
              "Hard bounce: the address does not accept mail.", "ハードバウンスした。"),
    ErrorCode("Permanent:Suppressed", "bounce", "hard",
              "Suppressed because the address is on a global suppression list.",
              "グローバルサプレッションリストに存在するため抑制された。"),
    # app push errors
    ErrorCode("messaging/registration-token-not-registered", "push", None,
              "The FCM token is no longer valid (app restored on a new device, reinstalled "
              "or its data cleared).",
              "FCM tokenの更新によってこれまでのtokenが利用不可になっている。"),
    ErrorCode("messaging/invalid-payload", "push", None,
              "The data sent contained invalid values.",
              "送信されたデータに、不正な情報が含まれている。"),
    ErrorCode("messaging/mismatched-credential", "push", None,
              "No permission to send to this FCM token (sender id mismatch).",
              "FCM tokenに対してメッセージを送信する権限がない。"),
    ErrorCode("messaging/internal-error", "push", None,
              "Unknown error at the push service.", "不明なエラー。"),
    ErrorCode("messaging/invalid-argument", "push", None,
              "An internal error of the sender or a configuration mistake.",
              "「内部エラーが発生している」または「設定ミスをしている」可能性がある。"),
    # other errors
    ErrorCode("INVALID_PARAMETER", "other", None,
              "A parameter given was invalid (e.g. a malformed address).",
              "指定したパラメータが無効である。"),
    ErrorCode("unknown", "other", None,
              "Sending the LINE message failed (usually; not always).",
              "LINEのメッセージ送信がエラーとなった。"),
    ErrorCode("RENDERING_FAILURE", "other", None,
              "Building the content failed, e.g. an invalid embedded variable.",
              "埋め込み変数が不正などによって、コンテンツの作成時にエラーが発生した。"),
    ErrorCode("FAILED", "other", None,
              "Processing the request failed.", "リクエストの処理に失敗した。"),
    ErrorCode("HandlebarsError", "other", None,
              "Handlebars failed on an undefined variable.",
              "未定義の変数が利用されていることによってHandlebarsがエラーとなった。"),
)

BY_CODE: dict[str, ErrorCode] = {e.code: e for e in ERROR_CODES}

#: The push code that means the token is gone for good: the user goes on the
#: suppression list for push (F14), as a hard bounce does for email.
TOKEN_NOT_REGISTERED = "messaging/registration-token-not-registered"


def lookup(code: str) -> ErrorCode:
    """The table's row for ``code``; an unknown code is kept verbatim under "other"
    (F9), with the kind its SES bounce type gives, if any."""
    found = BY_CODE.get(code)
    if found is not None:
        return found
    if code.startswith("Permanent:"):
        return ErrorCode(code, "other", "hard", "Hard bounce of a kind not listed.",
                         "一覧にない種類のハードバウンス。")
    if code.startswith(("Transient:", "Undetermined:")):
        return ErrorCode(code, "other", "soft", "Temporary bounce of a kind not listed.",
                         "一覧にない種類の一時的なバウンス。")
    return ErrorCode(code, "other", None, "", "")


def is_hard_bounce_code(code: str | None) -> bool:
    return code is not None and lookup(code).kind == "hard"


def is_soft_bounce_code(code: str | None) -> bool:
    return code is not None and lookup(code).kind == "soft"


def classify(code: str | None) -> tuple[Category, BounceKind]:
    """(category, kind) of a code, as the reports list it; no code counts as "other"."""
    if not code:
        return "other", None
    found = lookup(code)
    return found.category, found.kind
