"""Mail wording in Vietnamese and English (kept in the core so the outbox needs no web layer)."""

from __future__ import annotations

from html import escape

from expense_audit.money import format_vnd

SUBJECTS = {
    "vi": {
        "event": "[{number}] {headline}: {title}",
        "remind": "[{number}] Nhắc việc: đề xuất đang chờ bạn xử lý: {title}",
        "escalate": "[{number}] Đề xuất chờ lâu, đã nhắc {count} lần: {title}",
        "checkpoint": "Điểm kiểm tra nhật ký {origin}: {size} sự kiện",
    },
    "en": {
        "event": "[{number}] {headline}: {title}",
        "remind": "[{number}] Reminder: a request is waiting for you: {title}",
        "escalate": "[{number}] Still waiting after {count} reminders: {title}",
        "checkpoint": "Log checkpoint {origin}: {size} events",
    },
}

BODIES = {
    "vi": {
        "greeting": "Chào {name},",
        "what": "{actor} đã thực hiện «{action}» với đề xuất {number}.",
        "remind": "Đề xuất {number} đang chờ bạn xử lý từ {since}.",
        "escalate": "Đề xuất {number} chờ «{state}» từ {since}; người phụ trách đã được nhắc "
        "{count} lần mà chưa xử lý. Thư này chỉ gửi một lần.",
        "amount": "Số tiền: {amount}",
        "comment": "Ý kiến: {comment}",
        "link": "Mở đề xuất (cần đăng nhập, thao tác ký cần xác nhận bằng mã ký):",
        "footer": "Thư tự động từ hệ thống duyệt chi. Vui lòng không trả lời thư này.",
    },
    "en": {
        "greeting": "Hello {name},",
        "what": "{actor} did “{action}” on request {number}.",
        "remind": "Request {number} has been waiting for you since {since}.",
        "escalate": "Request {number} has been “{state}” since {since}; whoever must act was "
        "reminded {count} times. You get this mail once.",
        "amount": "Amount: {amount}",
        "comment": "Comment: {comment}",
        "link": "Open the request (login required; signed steps ask for your signing secret):",
        "footer": "Automatic mail from the expense approval system. Please do not reply.",
    },
}


def render(
    *,
    kind: str,
    language: str,
    recipient_name: str,
    number: str,
    title: str,
    amount_vnd: int | None,
    actor_name: str = "",
    action_label: str = "",
    headline: str = "",
    comment: str | None = None,
    since: str = "",
    link: str,
    count: int = 0,
    state_label: str = "",
) -> tuple[str, str, str]:
    """Return (subject, plain text, HTML) for one mail about a request.

    ``kind`` is "event" (a step was taken; ``headline`` is the transition's mail subject from
    the definition), "remind" (a request waits too long) or "escalate" (the next role up is
    told, once, that ``count`` reminders went unanswered).
    """
    lang = language if language in SUBJECTS else "vi"
    words = BODIES[lang]
    subject = SUBJECTS[lang][kind].format(
        number=number, title=title[:80], headline=headline, count=count
    )
    lines = [words["greeting"].format(name=recipient_name), ""]
    if kind == "escalate":
        lines.append(
            words["escalate"].format(number=number, since=since, count=count, state=state_label)
        )
    elif kind == "remind":
        lines.append(words["remind"].format(number=number, since=since))
    else:
        lines.append(words["what"].format(actor=actor_name, action=action_label, number=number))
    lines.append(f"«{title}»" if lang == "vi" else f"“{title}”")
    if amount_vnd is not None:
        lines.append(words["amount"].format(amount=format_vnd(amount_vnd)))
    if comment:
        lines.append(words["comment"].format(comment=comment))
    lines += ["", words["link"], link, "", "--", words["footer"]]
    text = "\n".join(lines) + "\n"
    html_lines = "".join(
        f"<p>{escape(line)}</p>" if line and line != link else "" for line in lines if line != "--"
    )
    html = (
        '<!doctype html><html><body style="font-family:sans-serif;font-size:16px">'
        f'{html_lines}<p><a href="{escape(link)}" style="display:inline-block;padding:12px 18px;'
        f'background:#0b5cab;color:#fff;text-decoration:none;border-radius:6px">{escape(number)}</a></p>'
        "</body></html>"
    )
    return subject, text, html


def render_digest(
    *, language: str, recipient_name: str, items: list[tuple[str, str]]
) -> tuple[str, str, str]:
    """One daily mail listing what happened to the requests the user follows."""
    lang = language if language in SUBJECTS else "vi"
    if lang == "vi":
        subject = f"Tổng hợp trong ngày: {len(items)} đề xuất cần chú ý"
        intro = f"Chào {recipient_name},\n\nCác đề xuất cần bạn chú ý:"
    else:
        subject = f"Daily digest: {len(items)} requests need your attention"
        intro = f"Hello {recipient_name},\n\nRequests that need your attention:"
    text = intro + "\n\n" + "\n".join(f"- {s}\n  {link}" for s, link in items) + "\n"
    html = (
        '<!doctype html><html><body style="font-family:sans-serif;font-size:16px">'
        f"<p>{escape(intro)}</p><ul>"
        + "".join(f'<li><a href="{escape(link)}">{escape(s)}</a></li>' for s, link in items)
        + "</ul></body></html>"
    )
    return subject, text, html


def render_checkpoint(
    *, origin: str, size: int, note: str, fingerprint: str
) -> tuple[str, str, str]:
    """A signed checkpoint sent to a witness: keep it; it proves the log's state today."""
    subject = SUBJECTS["vi"]["checkpoint"].format(origin=origin, size=size)
    text = (
        "Điểm kiểm tra (checkpoint) đã ký của nhật ký duyệt chi. Vui lòng lưu thư này:\n"
        "nó chứng minh trạng thái nhật ký hôm nay (C2SP tlog-checkpoint).\n"
        f"Dấu vân tay khóa của trường: {fingerprint}\n"
        "Kiểm tra: audit-verify BUNDLE.zip --trust checkpoint.txt\n\n" + note
    )
    html = (
        f'<!doctype html><html><body><pre style="font-size:14px">{escape(text)}</pre></body></html>'
    )
    return subject, text, html


_KEY_WORDS = {
    "vi": {
        "subject": "Khóa ký mới cho tài khoản của bạn ({key_id})",
        "enrollment": "Một khóa ký mới đã được đăng ký cho tài khoản của bạn.",
        "rotation": "Bạn đã đổi khóa ký: khóa cũ được thu hồi từ bây giờ.",
        "recovery": "Khóa ký của bạn đã được khôi phục theo mã do quản trị {by} cấp; "
        "khóa cũ được thu hồi từ bây giờ.",
        "kind": {"passkey": "passkey (vân tay, khuôn mặt)", "server-held": "khóa giữ trên máy chủ"},
        "warn": "Nếu không phải bạn làm việc này, hãy báo ngay cho hiệu trưởng và quản trị.",
    },
    "en": {
        "subject": "A new signing key for your account ({key_id})",
        "enrollment": "A new signing key was registered for your account.",
        "rotation": "You rotated your signing key: the old one is revoked from now on.",
        "recovery": "Your signing key was recovered with a code issued by the admin {by}; "
        "the old one is revoked from now on.",
        "kind": {"passkey": "passkey (fingerprint, face)", "server-held": "server-held key"},
        "warn": "If this was not you, tell the principal and the admin at once.",
    },
}


def render_key_mail(
    *, language: str, recipient_name: str, method: str, kind: str, key_id: str, by: str, link: str
) -> tuple[str, str, str]:
    """A new key for the person's account: what, how, and what to do if it was not them."""
    lang = language if language in _KEY_WORDS else "vi"
    words = _KEY_WORDS[lang]
    kinds: dict[str, str] = words["kind"]  # type: ignore[assignment]
    what = str(words.get(method, words["enrollment"])).format(by=by)
    lines = [
        BODIES[lang]["greeting"].format(name=recipient_name),
        "",
        what,
        f"{kinds.get(kind, kind)} · {key_id}",
        "",
        str(words["warn"]),
        link,
        "",
        "--",
        BODIES[lang]["footer"],
    ]
    text = "\n".join(lines) + "\n"
    html = (
        '<!doctype html><html><body style="font-family:sans-serif;font-size:16px">'
        + "".join(f"<p>{escape(line)}</p>" for line in lines if line and line != "--")
        + "</body></html>"
    )
    return str(words["subject"]).format(key_id=key_id), text, html
