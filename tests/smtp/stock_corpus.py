"""Corpus of SMTP sessions for the stock-equivalence test.

Each session runs once against stock netqmail-1.06's qmail-smtpd and once
against the patched one, with the same control files and environment and no
throttling configured; the replies and what was queued must be identical.

Steps:
  ("cmd", line)    send line + CRLF, read one complete reply
  ("send", bytes)  send exactly these bytes, read nothing
  ("reply",)       read one complete reply
  ("rest",)        read everything until the server closes
"""

CRLF = b"\r\n"


def message(*lines: bytes) -> bytes:
    return b"".join(line + CRLF for line in lines) + b"." + CRLF


BASIC_MSG = message(b"From: a@client.example", b"To: u@test.example",
                    b"Subject: hello", b"", b"body line", b"second line")

SESSIONS = {
    "helo_mail_rcpt_data_quit": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"), ("send", BASIC_MSG), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "ehlo_and_lowercase": dict(steps=[
        ("reply",), ("cmd", "EHLO client.example"), ("cmd", "mail from:<a@client.example>"),
        ("cmd", "rcpt to:<u@test.example>"), ("cmd", "rcpt to:<V@Local.Example>"),
        ("cmd", "data"), ("send", BASIC_MSG), ("reply",), ("cmd", "quit"), ("rest",)]),
    "helo_variants": dict(steps=[
        ("reply",), ("cmd", "HELO"), ("cmd", "HELO "), ("cmd", "EHLO"),
        ("cmd", "HELO a b c"), ("cmd", "helo [127.0.0.1]"), ("cmd", "QUIT"), ("rest",)]),
    "order_errors": dict(steps=[
        ("reply",), ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("cmd", "MAIL FROM:<a@client.example>"), ("cmd", "MAIL FROM:<b@client.example>"),
        ("cmd", "DATA"), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "DATA"), ("cmd", "QUIT"), ("rest",)]),
    "nonlocal_rcpt_not_relay": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<x@elsewhere.example>"), ("cmd", "RCPT TO:<x%y@test.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "RCPT TO:<@route.example:u@test.example>"),
        ("cmd", "DATA"), ("send", BASIC_MSG), ("reply",), ("cmd", "QUIT"), ("rest",)]),
    "relay_client": dict(env={"RELAYCLIENT": ""}, steps=[
        ("reply",), ("cmd", "EHLO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<x@elsewhere.example>"), ("cmd", "RCPT TO:<y@other.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"), ("send", BASIC_MSG), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "relay_client_suffix": dict(env={"RELAYCLIENT": "@smarthost.example"}, steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<x@elsewhere.example>"), ("cmd", "DATA"), ("send", BASIC_MSG),
        ("reply",), ("cmd", "QUIT"), ("rest",)]),
    "malformed_commands": dict(steps=[
        ("reply",), ("cmd", "FOO bar"), ("cmd", ""), ("cmd", "MAIL"), ("cmd", "HELO client.example"),
        ("cmd", "MAIL FROM:"), ("cmd", "RSET"), ("cmd", "MAIL FROM:a@client.example"),
        ("cmd", "RCPT TO:"), ("cmd", "RCPT TO:<u@test.example"), ("cmd", "RCPT TO:u@test.example"),
        ("cmd", "RCPT TO:<>"), ("cmd", "RCPT"), ("cmd", "MAIL FROM:<a@client.example> SIZE=100"),
        ("cmd", "AUTH PLAIN AGFsaWNlAHNlY3JldA=="), ("cmd", "STARTTLS"), ("cmd", "ETRN x"),
        ("cmd", "TURN"), ("cmd", b"NOOP \x00\xff\x80 binary"), ("cmd", "QUIT"), ("rest",)]),
    "rset_noop_vrfy_help": dict(steps=[
        ("reply",), ("cmd", "NOOP"), ("cmd", "HELP"), ("cmd", "HELP MAIL"), ("cmd", "VRFY u"),
        ("cmd", "VRFY <u@test.example>"), ("cmd", "HELO client.example"),
        ("cmd", "MAIL FROM:<a@client.example>"), ("cmd", "RCPT TO:<u@test.example>"),
        ("cmd", "RSET"), ("cmd", "DATA"), ("cmd", "NOOP hello"), ("cmd", "QUIT"), ("rest",)]),
    "null_sender_and_brackets": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<>"),
        ("cmd", "RCPT TO: <u@test.example>"), ("cmd", "RCPT TO:<\"quoted name\"@test.example>"),
        ("cmd", "RCPT TO:<u@[127.0.0.1]>"), ("cmd", "DATA"), ("send", BASIC_MSG), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "long_lines": dict(steps=[
        ("reply",), ("cmd", "HELO " + "h" * 5000), ("cmd", "NOOP " + "n" * 100000),
        ("cmd", "MAIL FROM:<" + "a" * 3000 + "@client.example>"),
        ("cmd", "RCPT TO:<" + "u" * 3000 + "@test.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("send", message(b"Subject: long", b"", b"x" * 200000, b"y" * 1000)), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "dot_stuffing": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("send", message(b"Subject: dots", b"", b"..leading dot", b"...", b". x", b".",
                         b"last")), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "data_bare_lf": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("send", b"Subject: lf\r\n\r\nbare\nlf here\r\n.\r\n"), ("rest",)]),
    "data_bare_cr_and_lf_dot": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("send", b"Subject: cr\r\n\r\nbare\rcr\r\n\n.\n\r\n.\r\n"), ("rest",)]),
    "databytes_oversized": dict(control={"databytes": "300\n"}, steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"),
        ("send", message(b"Subject: big", b"", *([b"z" * 70] * 10))), ("reply",),
        ("cmd", "MAIL FROM:<a@client.example>"), ("cmd", "RCPT TO:<u@test.example>"),
        ("cmd", "DATA"), ("send", message(b"Subject: small", b"", b"ok")), ("reply",),
        ("cmd", "QUIT"), ("rest",)]),
    "pipelined": dict(steps=[
        ("reply",), ("cmd", "EHLO client.example"),
        ("send", b"MAIL FROM:<a@client.example>\r\nRCPT TO:<u@test.example>\r\n"
                 b"RCPT TO:<nope@elsewhere.example>\r\nDATA\r\n"),
        ("reply",), ("reply",), ("reply",), ("reply",), ("send", BASIC_MSG), ("reply",),
        ("send", b"RSET\r\nNOOP\r\nQUIT\r\n"), ("rest",)]),
    "several_transactions": dict(env={"RELAYCLIENT": ""}, steps=[
        ("reply",), ("cmd", "HELO client.example"),
        *[s for i in range(5) for s in (
            ("cmd", f"MAIL FROM:<s{i}@client.example>"), ("cmd", f"RCPT TO:<r{i}@far.example>"),
            ("cmd", f"RCPT TO:<u{i}@test.example>"), ("cmd", "DATA"), ("send", BASIC_MSG),
            ("reply",))],
        ("cmd", "QUIT"), ("rest",)]),
    "client_closes_in_data": dict(steps=[
        ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
        ("cmd", "RCPT TO:<u@test.example>"), ("cmd", "DATA"), ("send", b"Subject: cut\r\n\r\npartial"),
        ("close",)]),
    "rcpthosts_wildcard_and_morercpthosts": dict(
        control={"rcpthosts": "test.example\n.sub.example\n"}, steps=[
            ("reply",), ("cmd", "HELO client.example"), ("cmd", "MAIL FROM:<a@client.example>"),
            ("cmd", "RCPT TO:<u@a.sub.example>"), ("cmd", "RCPT TO:<u@sub.example>"),
            ("cmd", "RCPT TO:<u@TEST.EXAMPLE>"), ("cmd", "QUIT"), ("rest",)]),
}
