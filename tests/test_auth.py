"""lanchat/auth without sockets: the login conversation for every kind of client, the attempt
limit with a fake clock, the relay's secrets, the password file and the operator token's file.
The same conversation over real sockets and processes is tests/test_login.py."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from lanchat.auth.attempts import MAX_ADDRESSES, LoginAttempts, address_key
from lanchat.auth.login import (
    FAILURE_DELAY,
    MAX_LOGIN_LINES,
    MAX_WRONG,
    Admitted,
    Conversation,
    Gate,
    Leave,
    Step,
)
from lanchat.auth.secrets import (
    Secrets,
    read_password_file,
    read_token,
    remove_token,
    token_path,
    write_token,
)
from lanchat.errors import UsageError
from lanchat.protocol import (
    LOGIN_CONSOLE,
    LOGIN_OPERATOR,
    LOGIN_ROOM,
    Goodbye,
    LoginChallenge,
    LoginNeeded,
    LoginOk,
    Problem,
    encode_text,
)
from lanchat.protocol.scram import MECHANISM, MECHANISM_PLUS, MIN_ITERATIONS, ScramClient

ROOM_PW = "open sesame"
OPERATOR_PW = "teacher's own"
TOKEN = "t0ken-from-the-file"
BINDING = b"\x07" * 32
LOCAL = ("192.168.1.5", 7420)


def secrets(room: str | None = ROOM_PW, operator: str | None = OPERATOR_PW) -> Secrets:
    return Secrets.make(room, operator, iterations=MIN_ITERATIONS).with_console(TOKEN)


def talk(
    gate: Gate,
    *,
    hello: bool = False,
    web: bool = False,
    binding: bytes | None = None,
    address: str = "10.0.0.9",
) -> Conversation:
    from lanchat.protocol import Hello

    greeting = Hello(1, "ana", login=False) if hello or web else None
    return Conversation(
        gate,
        hello=greeting,
        web=web,
        address=address,
        local=LOCAL,
        binding=binding,
        seq=lambda: 41,
    )


def line(obj: dict[str, object]) -> bytes:
    return json.dumps(obj).encode()


def only(step: Step) -> object:
    assert len(step.say) == 1, step
    return step.say[0]


def scram_login(conversation: Conversation, username: str, password: str, binding=None) -> Step:
    client = ScramClient(username, password, binding=binding)
    challenge = only(
        conversation.feed(
            line({"type": "login", "mechanism": client.mechanism, "data": client.first()})
        )
    )
    assert isinstance(challenge, LoginChallenge), challenge
    step = conversation.feed(line({"type": "login", "data": client.final(challenge.data)}))
    ok = step.say[0]
    if isinstance(ok, LoginOk):
        client.check(ok.data)  # the relay proved it knows the verifier
    return step


class TestRawClients:
    def test_a_raw_client_is_told_to_log_in_then_logs_in(self) -> None:
        login = talk(Gate(secrets(), allow_plain_login=True))
        needed = only(login.start())
        assert isinstance(needed, LoginNeeded) and needed.password
        assert encode_text(needed) == (
            b"* This room needs a password: type /login PASSWORD (or /quit to leave).\n"
        )
        reminder = only(login.feed(b"hello?"))
        assert isinstance(reminder, Problem) and "/login PASSWORD" in reminder.message
        assert login.feed(b"   ").say == ()  # a blank line is not worth a reminder (but counts)
        step = login.feed(b"/login " + ROOM_PW.encode())
        assert step.outcome == Admitted(None, operator=False)
        assert isinstance(only(step), LoginOk)

    def test_a_wrong_password_pauses_counts_and_may_be_typed_again(self) -> None:
        login = talk(Gate(secrets(), allow_plain_login=True))
        login.start()
        step = login.feed(b"/login nope")
        assert step.pause == FAILURE_DELAY and step.refusal == "bad-password"
        assert step.outcome is None
        assert only(step).code == "wrong-password"
        assert login.feed(b"/login " + ROOM_PW.encode()).outcome == Admitted(None, False)

    def test_too_many_wrong_passwords_on_one_connection_hang_up(self) -> None:
        login = talk(Gate(secrets(), allow_plain_login=True))
        login.start()
        steps = [login.feed(b"/login nope") for _ in range(MAX_WRONG)]
        assert [s.outcome for s in steps] == [None] * (MAX_WRONG - 1) + [Leave()]

    def test_on_plain_tcp_without_permission_no_password_is_taken(self) -> None:
        login = talk(Gate(secrets()))
        needed = only(login.start())
        assert isinstance(needed, LoginNeeded) and not needed.password
        text = encode_text(needed).decode()
        assert text.startswith("! This room needs a password, and this connection is not")
        assert "`lanchat join 192.168.1.5:7420`" in text
        step = login.feed(b"/login " + ROOM_PW.encode())
        assert step.outcome == Leave() and step.refusal == "plain-login"
        assert only(step).message.startswith("The password was not checked")

    def test_with_tls_offered_ncat_ssl_is_named(self) -> None:
        text = only(talk(Gate(secrets(), tls_offered=True)).start()).message
        assert "`ncat --ssl 192.168.1.5 7420`" in text

    def test_over_tls_a_cleartext_password_is_taken(self) -> None:
        login = talk(Gate(secrets()), binding=BINDING)
        assert only(login.start()).password
        assert login.feed(b"/login " + ROOM_PW.encode()).outcome == Admitted(None, False)

    def test_the_operator_password_or_token_lets_in_as_an_operator(self) -> None:
        for secret in (OPERATOR_PW, TOKEN):
            login = talk(Gate(secrets(), allow_plain_login=True))
            login.start()
            step = login.feed(b"/login " + secret.encode())
            assert step.outcome == Admitted(None, operator=True)
            assert encode_text(only(step)) == b"* Password accepted: you are an operator.\n"

    def test_lines_without_a_login_are_bounded(self) -> None:
        login = talk(Gate(secrets(), allow_plain_login=True))
        login.start()
        steps = [login.feed(b"chat %d" % i) for i in range(MAX_LOGIN_LINES + 1)]
        assert all(s.outcome is None for s in steps[:-1])
        assert steps[-1].outcome == Leave() and steps[-1].refusal == "no-login"

    def test_time_without_a_login_ends_it(self) -> None:
        step = talk(Gate(secrets())).expired()
        assert step.outcome == Leave() and step.refusal == "no-login"

    def test_quit_leaves_without_a_refusal(self) -> None:
        login = talk(Gate(secrets()))
        login.start()
        step = login.feed(b"/quit")
        assert step.outcome == Leave(refused=False) and step.refusal is None
        assert isinstance(only(step), Goodbye)

    def test_a_late_lanchat_hello_turns_it_into_a_lanchat_login(self) -> None:
        login = talk(Gate(secrets()))
        login.start()  # the raw greeting: `lanchat join HOST` listened first
        needed = only(login.feed(line({"type": "hello", "version": 1, "name": "ana"})))
        assert login.kind == "lanchat" and isinstance(needed, LoginNeeded)
        step = scram_login(login, LOGIN_ROOM, ROOM_PW)
        assert isinstance(step.outcome, Admitted) and step.outcome.hello is not None
        assert step.outcome.hello.name == "ana"

    def test_a_hello_later_on_is_just_a_line(self) -> None:
        login = talk(Gate(secrets()))
        login.start()
        login.feed(b"hi")
        login.feed(line({"type": "hello", "version": 1}))
        assert login.kind == "raw"


class TestLanchatClients:
    def test_scram_logs_in_and_the_relay_proves_itself(self) -> None:
        login = talk(Gate(secrets()), hello=True)
        needed = only(login.start())
        assert isinstance(needed, LoginNeeded) and needed.mechanisms == (MECHANISM,)
        step = scram_login(login, LOGIN_ROOM, ROOM_PW)
        assert step.outcome == Admitted(login.hello, operator=False)

    def test_scram_with_the_wrong_password(self) -> None:
        login = talk(Gate(secrets()), hello=True)
        login.start()
        step = scram_login(login, LOGIN_ROOM, "nope")
        assert only(step).code == "wrong-password" and step.pause == FAILURE_DELAY

    @pytest.mark.parametrize("username", [LOGIN_OPERATOR, LOGIN_CONSOLE])
    def test_operators_log_in_in_a_room_without_a_password(self, username: str) -> None:
        gate = Gate(secrets(room=None))
        from lanchat.protocol import Hello

        assert not gate.asks(Hello(1)) and gate.asks(Hello(1, login=True))
        login = talk(gate, hello=True)
        assert only(login.start()).message == "Log in as an operator."
        secret = OPERATOR_PW if username == LOGIN_OPERATOR else TOKEN
        assert scram_login(login, username, secret).outcome == Admitted(login.hello, True)

    def test_a_missing_login_is_named(self) -> None:
        login = talk(Gate(secrets(operator=None)), hello=True)
        login.start()
        client = ScramClient(LOGIN_OPERATOR, "x")
        step = login.feed(line({"type": "login", "mechanism": MECHANISM, "data": client.first()}))
        assert "no operator password" in only(step).message

    def test_over_tls_only_plus_and_its_binding(self) -> None:
        login = talk(Gate(secrets()), hello=True, binding=BINDING)
        assert only(login.start()).mechanisms == (MECHANISM_PLUS,)
        assert scram_login(login, LOGIN_ROOM, ROOM_PW, binding=BINDING).outcome is not None
        downgrade = talk(Gate(secrets()), hello=True, binding=BINDING)
        downgrade.start()
        first = ScramClient(LOGIN_ROOM, ROOM_PW).first()  # "n,,...": no binding
        step = downgrade.feed(line({"type": "login", "mechanism": MECHANISM, "data": first}))
        assert only(step).code == "channel-binding"

    def test_logins_that_never_finish_are_lines_too(self) -> None:
        login = talk(Gate(secrets()), hello=True)
        login.start()
        first = line({"type": "login", "mechanism": MECHANISM, "data": "n,,n=room,r=abc"})
        steps = [login.feed(first) for _ in range(MAX_LOGIN_LINES + 1)]
        assert all(isinstance(only(s), LoginChallenge) for s in steps[:-1])
        assert steps[-1].outcome == Leave() and steps[-1].refusal == "no-login"

    def test_other_frames_before_the_login_get_a_reminder(self) -> None:
        login = talk(Gate(secrets()), hello=True)
        login.start()
        assert only(login.feed(line({"type": "message", "text": "hi"}))).code == "login-needed"
        assert only(login.feed(b"{not json")).code == "bad-frame"
        final_first = login.feed(line({"type": "login", "data": "c=biws,r=x,p=AAAA"}))
        assert only(final_first).code == "bad-login"


class TestBrowsers:
    def test_a_browser_on_plain_http_is_told_where_to_go(self) -> None:
        needed = only(talk(Gate(secrets(), tls_offered=True), web=True).start())
        assert not needed.password
        assert "open https://192.168.1.5:7420/" in needed.message
        step = talk(Gate(secrets()), web=True)
        step.start()
        refused = step.feed(line({"type": "login", "password": ROOM_PW}))
        assert refused.outcome == Leave() and refused.refusal == "plain-login"

    def test_a_browser_logs_in_with_its_password_where_allowed(self) -> None:
        login = talk(Gate(secrets(), allow_plain_login=True), web=True)
        assert only(login.start()).password
        step = login.feed(line({"type": "login", "password": ROOM_PW}))
        assert step.outcome == Admitted(login.hello, False)


class TestMembers:
    def test_a_member_becomes_an_operator_with_the_operator_password(self) -> None:
        login = talk(Gate(secrets(room=None), allow_plain_login=True))
        step = login.member_login(OPERATOR_PW)
        assert step.outcome == Admitted(None, operator=True)

    def test_the_room_password_does_not_make_an_operator(self) -> None:
        step = talk(Gate(secrets(), allow_plain_login=True)).member_login(ROOM_PW)
        assert step.outcome is None and only(step).code == "bad-login"

    def test_a_member_on_plain_tcp_is_told_and_stays(self) -> None:
        step = talk(Gate(secrets(room=None))).member_login(OPERATOR_PW)
        assert step.outcome is None and step.refusal == "plain-login"
        assert "lanchat join --operator 192.168.1.5:7420" in only(step).message

    def test_a_wrong_operator_password_counts_but_never_hangs_up(self) -> None:
        login = talk(Gate(secrets(room=None), allow_plain_login=True))
        steps = [login.member_login("nope") for _ in range(MAX_WRONG + 1)]
        assert all(s.outcome is None and s.refusal == "bad-password" for s in steps)


class TestTheLock:
    def test_a_locked_address_is_refused_at_once_but_not_the_token(self) -> None:
        gate = Gate(secrets(), allow_plain_login=True, attempts=LoginAttempts(2))
        for _ in range(2):
            gate.attempts.failed("10.0.0.9")
        raw = only(talk(gate).start())
        assert raw.code == "login-locked"
        assert raw.message == ("Too many wrong passwords from 10.0.0.9; try again in 10 minutes.")
        locked = talk(gate, hello=True)
        locked.start()  # a lanchat client may hold the token: it may say who it is
        client = ScramClient(LOGIN_ROOM, ROOM_PW)
        step = locked.feed(line({"type": "login", "mechanism": MECHANISM, "data": client.first()}))
        assert step.outcome == Leave() and step.refusal == "login-locked"
        console = talk(gate, hello=True)
        console.start()
        assert scram_login(console, LOGIN_CONSOLE, TOKEN).outcome == Admitted(console.hello, True)

    def test_another_address_is_not_locked(self) -> None:
        gate = Gate(secrets(), allow_plain_login=True, attempts=LoginAttempts(1))
        gate.attempts.failed("10.0.0.9")
        assert isinstance(only(talk(gate, address="10.0.0.10").start()), LoginNeeded)

    def test_failures_slide_out_of_the_window(self) -> None:
        now = [1000.0]
        attempts = LoginAttempts(3, 600.0, clock=lambda: now[0])
        assert attempts.failed("a") == 0 and attempts.failed("a") == 0
        now[0] += 100
        assert attempts.failed("a") == pytest.approx(500.0)  # until the first is 600 s old
        now[0] += 499
        assert attempts.locked_for("a") == pytest.approx(1.0)
        now[0] += 1
        assert attempts.locked_for("a") == 0  # the first two slid out: two more tries
        assert attempts.failed("a") == 0
        assert attempts.failed("a") == pytest.approx(100.0)  # the third is 500 s old

    def test_a_login_that_works_forgets_the_failures(self) -> None:
        attempts = LoginAttempts(2)
        attempts.failed("a")
        attempts.succeeded("a")
        assert attempts.failed("a") == 0

    def test_addresses_are_counted_as_hosts_are(self) -> None:
        assert address_key("::ffff:10.0.0.9") == "10.0.0.9"
        assert address_key("2001:db8::1") == address_key("2001:db8::ffff:2") == "2001:db8::/64"
        assert address_key("fe80::1%eth0") == "fe80::/64"
        assert address_key("127.0.0.1") == "127.0.0.1"  # loopback counts (attempts.py says why)

    def test_the_table_is_bounded(self) -> None:
        attempts = LoginAttempts(1)
        for i in range(MAX_ADDRESSES + 10):
            attempts.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        assert len(attempts._failures) == MAX_ADDRESSES
        assert attempts.locked_for("10.0.0.0") == 0  # the oldest went first


class TestSecrets:
    def test_one_salt_for_every_secret_and_no_password_kept(self) -> None:
        made = secrets()
        verifiers = made.by_name()
        assert set(verifiers) == {LOGIN_ROOM, LOGIN_OPERATOR, LOGIN_CONSOLE}
        assert len({v.salt for v in verifiers.values()}) == 1
        assert ROOM_PW not in repr(made) and OPERATOR_PW not in repr(made)

    def test_the_operator_password_must_not_be_the_rooms(self) -> None:
        with pytest.raises(UsageError):
            Secrets.make("same", "same")
        with pytest.raises(UsageError):
            Secrets.make("", None)

    def test_the_password_file_gives_its_first_line_without_the_newline(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "pw"
        path.write_bytes(b" spaces stay \r\nsecond line\n")
        assert read_password_file(str(path)) == " spaces stay "
        path.write_text("\nlater\n")
        with pytest.raises(UsageError):
            read_password_file(str(path))
        with pytest.raises(UsageError):
            read_password_file(str(tmp_path / "missing"))


@pytest.mark.skipif(sys.platform == "win32", reason="file modes are POSIX")
def test_the_token_file_is_the_owners_and_removed_only_if_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANCHAT_CONFIG_DIR", str(tmp_path / "conf"))
    path = write_token(7421, "abc")
    assert path == token_path(7421) == tmp_path / "conf" / "operator" / "7421.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "conf").st_mode) == 0o700  # made owner-only too
    assert read_token(7421) == "abc"
    remove_token(7421, "another run's")
    assert path.exists()
    remove_token(7421, "abc")
    assert not path.exists() and read_token(7421) is None
