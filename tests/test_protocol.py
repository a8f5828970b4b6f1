"""The wire format without sockets: lines fed whole and byte by byte, oversize, garbage, names,
escape stripping, and every frame both ways (h11-style tests)."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanchat.protocol import (
    DETECT_SECONDS,
    MAX_LINE_BYTES,
    AskHelp,
    AskTopic,
    AskWho,
    Ban,
    Chat,
    FrameError,
    Gap,
    Goodbye,
    Hello,
    Joined,
    Kick,
    Left,
    LineDecoder,
    LineTooLong,
    Login,
    LoginChallenge,
    LoginNeeded,
    LoginOk,
    Moderation,
    Mute,
    Ping,
    Pong,
    Problem,
    Quit,
    Renamed,
    Resume,
    Say,
    SetName,
    SetTopic,
    TopicIs,
    Unban,
    Unmute,
    Welcome,
    WhoList,
    clean_text,
    encode_history_text,
    encode_json,
    encode_request,
    encode_text,
    name_key,
    name_problem,
    name_taken,
    parse_event,
    parse_hello,
    parse_raw_line,
    parse_request,
    render_line,
    service_request,
    suggest_name,
)
from lanchat.protocol.detect import Opening, detect_client


def feed_bytewise(decoder: LineDecoder, data: bytes) -> list[bytes | LineTooLong]:
    out: list[bytes | LineTooLong] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return out


class TestLineDecoder:
    def test_whole_and_bytewise_agree(self) -> None:
        data = b"one\r\ntwo\n\nthree\npartial"
        whole = LineDecoder().feed(data)
        assert whole == [b"one", b"two", b"", b"three"]
        assert feed_bytewise(LineDecoder(), data) == whole

    def test_last_line_without_newline_is_kept_at_end_of_stream(self) -> None:
        decoder = LineDecoder()
        assert decoder.feed(b"hello") == []
        assert decoder.finish() == [b"hello"]
        assert decoder.finish() == []

    def test_line_at_the_limit_passes_one_more_byte_does_not(self) -> None:
        decoder = LineDecoder(max_line=10)
        assert decoder.feed(b"x" * 10 + b"\n") == [b"x" * 10]
        assert decoder.feed(b"x" * 10 + b"\r\n") == [b"x" * 10]  # the \r is not counted
        assert decoder.feed(b"x" * 11 + b"\n") == [LineTooLong(10)]

    def test_oversize_line_is_reported_once_and_the_stream_resyncs(self) -> None:
        decoder = LineDecoder(max_line=10)
        out = feed_bytewise(decoder, b"y" * 50 + b"\nnext\n")
        assert out == [LineTooLong(10), b"next"]
        out = decoder.feed(b"z" * 30)
        out += decoder.feed(b"z" * 30)
        out += decoder.feed(b"\nafter\n")
        assert out == [LineTooLong(10), b"after"]
        assert decoder.finish() == []

    def test_oversize_tail_is_not_returned_at_end_of_stream(self) -> None:
        decoder = LineDecoder(max_line=4)
        assert decoder.feed(b"abcdefgh") == [LineTooLong(4)]
        assert decoder.finish() == []

    @given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=30))
    def test_any_split_gives_the_same_lines(self, data: bytes, cuts: list[int]) -> None:
        whole = LineDecoder(max_line=32)
        expected = whole.feed(data) + whole.finish()
        pieces, pos = [], 0
        for cut in cuts:
            pieces.append(data[pos : pos + cut])
            pos += cut
        pieces.append(data[pos:])
        split = LineDecoder(max_line=32)
        got: list[bytes | LineTooLong] = []
        for piece in pieces:
            got += split.feed(piece)
        assert got + split.finish() == expected


JOINERS = "\u200c\u200d"  # kept in text: Persian, Indic scripts and emoji sequences need them
TERMINAL_CHARS = [
    ch
    for ch in map(chr, range(sys.maxunicode + 1))
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in JOINERS
]


def acts_on_terminal(ch: str) -> bool:
    """A control, format or separator character: it can move, hide or restyle text."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in JOINERS


class TestCleanText:
    @pytest.mark.parametrize(
        ("dirty", "clean"),
        [
            ("plain text", "plain text"),
            ("\x1b[31mred\x1b[0m", "red"),
            ("\x1b[2J\x1b[Hcleared", "cleared"),
            ("bell\x07", "bell"),
            ("back\x08\x08space", "backspace"),
            ("\x1b]0;evil title\x07hi", "hi"),
            ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
            ("\x9b31mC1 csi", "C1 csi"),
            ("tab\there", "tab here"),
            ("line\nbreak\r\n", "line break  "),
            ("abc\u202edcba", "abcdcba"),
            ("del\x7fete", "delete"),
            ("lone escape \x1b", "lone escape "),
            ("ünïcødé ✓ 你好", "ünïcødé ✓ 你好"),
            ("one\u2028two\u2029three", "one two three"),  # separators a terminal may break on
            ("\u200fabc\u200e\u061c!", "abc!"),  # bidi marks move neutral characters
            ("zero\u200bwidth\u2060joined\u2064", "zerowidthjoined"),  # invisible
            ("\ufeffbom and soft\xadhyphen", "bom and softhyphen"),
            ("tag\U000e0041\U000e0042s", "tags"),  # tag characters hide ASCII text
            ("\U0001f469\u200d\U0001f4bb coder", "\U0001f469\u200d\U0001f4bb coder"),  # ZWJ emoji
            (
                "\u0645\u06cc\u200c\u0634\u0648\u0645",
                "\u0645\u06cc\u200c\u0634\u0648\u0645",
            ),  # ZWNJ
        ],
    )
    def test_strips_what_acts_on_terminals(self, dirty: str, clean: str) -> None:
        assert clean_text(dirty) == clean

    @pytest.mark.parametrize(
        ("dirty", "clean"),
        [
            ("\x1b]0;title never ends", "title never ends"),
            ("hi \x1b]8;;http://x and the rest", "hi http://x and the rest"),
            ("\x1bPdcs never ends", "dcs never ends"),
            ("a\x1b_apc b\x1b^pm c\x1bXsos", "aapc bpm csos"),
            ("\x1b]0;" + "9" * 40 + " rest", "9" * 26 + " rest"),  # the parameter part is bounded
            ("\x1b]0;title\x9c shown", " shown"),  # the one-character ST ends it too
        ],
    )
    def test_an_unterminated_string_escape_keeps_the_text_after_it(
        self, dirty: str, clean: str
    ) -> None:
        assert clean_text(dirty) == clean

    @given(st.text(max_size=200))
    def test_result_never_contains_a_control_character(self, text: str) -> None:
        assert not any(acts_on_terminal(ch) for ch in clean_text(text))

    @given(st.text(st.characters(codec="utf-8"), max_size=40), st.sampled_from(TERMINAL_CHARS))
    def test_no_character_that_acts_on_terminals_survives(self, text: str, bad: str) -> None:
        middle = len(text) // 2
        assert not any(
            acts_on_terminal(ch) for ch in clean_text(text[:middle] + bad + text[middle:])
        )

    def test_every_format_character_but_the_joiners_is_removed(self) -> None:
        # Holds the hand-written list in lines.py to this Python's Unicode data.
        for ch in TERMINAL_CHARS:
            assert clean_text(f"a{ch}\xe9") in ("a\xe9", "a \xe9"), f"U+{ord(ch):04X}"


class TestNames:
    @pytest.mark.parametrize("name", ["alice", "Bob_2", "a", "x" * 24, "zoë", "李雷", "ana.m-1"])
    def test_valid(self, name: str) -> None:
        assert name_problem(name) is None

    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("", "bad-name"),
            ("x" * 25, "bad-name"),
            ("has space", "bad-name"),
            ("-dash", "bad-name"),
            ("bell\x07", "bad-name"),
            ("\x1b[31mred", "bad-name"),
            ("a<b>", "bad-name"),
            ("server", "name-reserved"),
            ("SERVER", "name-reserved"),
            ("Admin", "name-reserved"),
            ("\uff53erver", "name-reserved"),  # fullwidth s
            ("\u0455erver", "name-reserved"),  # Cyrillic dze
            ("r00t", "name-reserved"),
            ("admin.", "name-reserved"),
            ("ana\u200d", "bad-name"),  # ZWJ
            ("a\u200bna", "bad-name"),  # ZWSP
            ("ana\ufeff", "bad-name"),  # BOM
            ("ana\u200f", "bad-name"),  # RLM
            ("a\u2028", "bad-name"),
            ("\u3164", "bad-name"),  # Hangul filler: a letter that shows as nothing
            ("ana\uffa0", "bad-name"),
        ],
    )
    def test_invalid(self, name: str, code: str) -> None:
        problem = name_problem(name)
        assert problem is not None and problem.code == code
        assert problem.message  # a sentence the user can act on

    def test_a_look_alike_of_a_reserved_name_is_told_which(self) -> None:
        problem = name_problem("\uff53erver")
        assert problem is not None and "looks like 'server'" in problem.message

    @pytest.mark.parametrize(
        ("name", "shown"),
        [
            ("ev\x1b[31mil", r"'ev\x1b[31mil'"),  # not 'evil': that one would be valid
            ("a\u202eb", r"'a\u202eb'"),  # a bidi override, visible instead of applied
        ],
    )
    def test_an_invalid_name_is_shown_as_typed_with_its_controls_escaped(
        self, name: str, shown: str
    ) -> None:
        problem = name_problem(name)
        assert problem is not None
        assert problem.message.startswith(f"{shown} is not a valid name")
        assert clean_text(problem.message) == problem.message  # nothing reaches a terminal raw

    @pytest.mark.parametrize(
        ("login", "name"),
        [
            ("John Doe", "John-Doe"),
            ("root", "guest"),
            ("", "guest"),
            ("ana", "ana"),
            ("__x__", "x"),
            ("é" * 30, "é" * 24),
        ],
    )
    def test_suggest_name_from_a_login(self, login: str, name: str) -> None:
        assert suggest_name(login) == name
        assert name_problem(suggest_name(login)) is None


class TestNameKey:
    @pytest.mark.parametrize(
        "look_alike",
        [
            "ANA",
            "\u0430na",  # Cyrillic a
            "\uff41\uff4e\uff41",  # fullwidth
            "\U0001d41a\U0001d427\U0001d41a",  # mathematical bold
            "\u0430\u0578\u0430",  # Cyrillic a, Armenian vo
            "ana.",
            "a_na",
            "a-n.a",
            "\u0391NA",  # Greek capital alpha
        ],
    )
    def test_look_alikes_share_the_key(self, look_alike: str) -> None:
        assert name_key(look_alike) == name_key("ana")

    @pytest.mark.parametrize(
        ("one", "other"),
        [
            ("j0hn", "john"),
            ("a11", "all"),
            ("paypa1", "paypal"),
            ("rn", "m"),
            ("\u0261\u0251\u03bf", "gao"),
        ],
    )
    def test_confusable_letters_and_digits_collide(self, one: str, other: str) -> None:
        assert name_key(one) == name_key(other)

    @pytest.mark.parametrize(
        ("one", "other"), [("ana", "anna"), ("ali", "all"), ("j\xf6rg", "jorg"), ("ana", "ana2")]
    )
    def test_different_names_stay_different(self, one: str, other: str) -> None:
        assert name_key(one) != name_key(other)

    @given(st.text(max_size=30))
    def test_the_key_is_idempotent(self, name: str) -> None:
        assert name_key(name_key(name)) == name_key(name)

    @given(st.text(max_size=30))
    def test_compatibility_forms_and_case_share_the_key(self, name: str) -> None:
        assert name_key(unicodedata.normalize("NFKC", name)) == name_key(name)
        assert name_key(name.casefold()) == name_key(name)

    def test_the_refusal_names_the_look_alike(self) -> None:
        assert name_taken("ANA", "ana") == "That name is taken: ana."
        assert name_taken("\u0430na", "ana") == "That name looks like 'ana', who is here."


class TestClientFrames:
    @pytest.mark.parametrize(
        "request_",
        [
            Hello(1, "alice", True, "lanchat 0.1"),
            Hello(1),
            Say("hi"),
            Say("waves", action=True),
            SetName("bob"),
            AskWho(),
            Ping("t1"),
            Quit(),
            Kick("bob", "spamming"),
            Kick("bob"),
            Mute("bob", 5),
            Unmute("bob"),
            Ban("bob", "insults"),
            Unban("10.0.0.5"),
            SetTopic("Fractions"),
            SetTopic(""),
            AskTopic(),
            Hello(1, "ana", login=True),
            Login("SCRAM-SHA-256", "n,,n=room,r=abc"),
            Login(data="c=biws,r=abcdef,p=AAAA"),
            Login("", "", "a cleartext password"),
        ],
    )
    def test_round_trip(self, request_: object) -> None:
        line = encode_request(request_)  # type: ignore[arg-type]
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert parse_request(line[:-1]) == request_

    @pytest.mark.parametrize(
        ("line", "code"),
        [
            (b"not json", "bad-frame"),
            (b"[1, 2]", "bad-frame"),
            (b'{"no": "type"}', "bad-frame"),
            (b'{"type": "launch-missiles"}', "bad-frame"),
            (b'{"type": "message"}', "bad-frame"),
            (b'{"type": "message", "text": 5}', "bad-frame"),
            (b'{"type": "nick", "name": null}', "bad-frame"),
            (b'{"type": "hello", "version": "1"}', "bad-frame"),
            (b'{"type": "hello", "version": true}', "bad-frame"),
            (b'{"type": "hello", "version": 0}', "unsupported-version"),
            (b'{"type": "hello", "version": 2}', "unsupported-version"),
            (b'{"type": "hello", "version": 99}', "unsupported-version"),
            (b'{"type": "hello", "version": ' + b"9" * 4000 + b"}", "unsupported-version"),
            (b"[" * 5000, "bad-frame"),
            (b'{"type": "message", "text": "\xff\xfe"', "bad-frame"),
            (b'{"type": "kick"}', "bad-frame"),
            (b'{"type": "kick", "name": "bob", "reason": 3}', "bad-frame"),
            (b'{"type": "mute", "name": "bob", "minutes": "5"}', "bad-frame"),
            (b'{"type": "mute", "name": "bob", "minutes": 0}', "bad-command"),
            (b'{"type": "mute", "name": "bob", "minutes": 1441}', "bad-command"),
            (b'{"type": "ban", "name": ["bob"]}', "bad-frame"),
            (b'{"type": "topic", "text": 5}', "bad-frame"),
        ],
    )
    def test_bad_frames_are_explained(self, line: bytes, code: str) -> None:
        with pytest.raises(FrameError) as info:
            parse_request(line)
        assert info.value.code == code and info.value.message

    def test_moderation_defaults_and_cleaning(self) -> None:
        assert parse_request(b'{"type": "mute", "name": "bob"}') == Mute("bob", 10)
        kick = parse_request(b'{"type": "kick", "name": "bob", "reason": " \\u001b[2Jrude "}')
        assert kick == Kick("bob", "rude")  # a reason is shown to everyone: cleaned
        assert parse_request(b'{"type": "topic", "text": null}') == AskTopic()

    def test_invalid_utf8_is_replaced_not_fatal(self) -> None:
        assert parse_request(b'{"type": "message", "text": "caf\xe9"}') == Say("caf\ufffd")

    @given(st.binary(max_size=200))
    def test_garbage_only_ever_raises_frame_error(self, line: bytes) -> None:
        try:
            parse_request(line)
        except FrameError:
            pass


class TestHelloDetection:
    def test_hello_is_recognised(self) -> None:
        assert parse_hello(b'{"type":"hello","version":1,"name":"a"}') == Hello(1, "a")

    @pytest.mark.parametrize(
        "line", [b"hello everyone", b"{not json", b'{"type":"message","text":"x"}', b"", b"{}"]
    )
    def test_anything_else_means_a_raw_client(self, line: bytes) -> None:
        assert parse_hello(line) is None

    def test_a_byte_order_mark_before_the_hello_is_ignored(self) -> None:
        line = b'\xef\xbb\xbf{"type":"hello","version":1,"name":"a"}'
        assert parse_hello(line) == Hello(1, "a")
        assert detect_client(line) == Opening("lanchat", Hello(1, "a"))
        assert parse_request(b'\xef\xbb\xbf{"type":"who"}') == AskWho()  # a later line too

    def test_a_hello_with_bad_fields_is_still_a_hello(self) -> None:
        with pytest.raises(FrameError):
            parse_hello(b'{"type":"hello","version":"x"}')


class TestRawLines:
    @pytest.mark.parametrize(
        ("text", "request_"),
        [
            ("hello", Say("hello")),
            ("/me waves", Say("waves", action=True)),
            ("/nick bob", SetName("bob")),
            ("/NICK bob", SetName("bob")),
            ("/who", AskWho()),
            ("/help", AskHelp()),
            ("/quit", Quit()),
            ("//not a command", Say("/not a command")),
            ("/kick bob", Kick("bob")),
            ("/kick bob  keeps spamming ", Kick("bob", "keeps spamming")),
            ("/mute bob", Mute("bob", 10)),
            ("/MUTE bob 25", Mute("bob", 25)),
            ("/unmute bob", Unmute("bob")),
            ("/ban bob insults", Ban("bob", "insults")),
            ("/unban bob", Unban("bob")),
            ("/UNBAN 10.0.0.5 ", Unban("10.0.0.5")),
            ("/topic", AskTopic()),
            ("/topic Fractions, page 12", SetTopic("Fractions, page 12")),
            ("/topic -", SetTopic("")),
            ("  ", None),
            ("", None),
        ],
    )
    def test_commands_and_messages(self, text: str, request_: object) -> None:
        assert parse_raw_line(text) == request_

    @pytest.mark.parametrize(
        ("text", "password"),
        [
            ("/login pw", "pw"),
            ("/LOGIN two words ", "two words"),
            ("  /login\tpw", "pw"),  # leading blanks do not make it a message
        ],
    )
    def test_a_login_line_is_a_login_never_a_message(self, text: str, password: str) -> None:
        login = parse_raw_line(text)
        assert login == Login(password=password) and login.password == password
        assert password not in repr(login)  # never in a log or a traceback

    @pytest.mark.parametrize("text", ["/login", "//login pw", " //LOGIN pw", "/login   "])
    def test_a_login_line_without_a_password_or_escaped_is_still_not_a_message(
        self, text: str
    ) -> None:
        with pytest.raises(FrameError) as info:
            parse_raw_line(text)
        assert info.value.code == "bad-login" and "pw" not in info.value.message

    def test_login_as_part_of_a_message_is_a_message(self) -> None:
        assert parse_raw_line("how do I /login here?") == Say("how do I /login here?")
        with pytest.raises(FrameError) as info:
            parse_raw_line("/loginx")  # an unknown command, as before
        assert info.value.code == "unknown-command"

    @pytest.mark.parametrize("text", ["/frobnicate", "/nick", "/me"])
    def test_unknown_or_incomplete_command(self, text: str) -> None:
        with pytest.raises(FrameError) as info:
            parse_raw_line(text)
        assert info.value.code == "unknown-command" and "/help" in info.value.message

    @pytest.mark.parametrize(
        ("text", "code", "says"),
        [
            ("/kick", "unknown-command", "/kick needs a name"),
            ("/ban", "unknown-command", "Operator commands"),
            ("/mute bob ten", "bad-command", "/mute bob 10"),
            ("/mute bob 0", "bad-command", "1 to 1440 minutes"),
            ("/mute bob 99999", "bad-command", "not 99999"),
            ("/mute bob \u0665", "bad-command", "number of minutes"),  # an Arabic-Indic digit
        ],
    )
    def test_moderation_commands_explain_their_mistakes(
        self, text: str, code: str, says: str
    ) -> None:
        with pytest.raises(FrameError) as info:
            parse_raw_line(text)
        assert info.value.code == code and says in info.value.message


SERVER_FRAMES = [
    Welcome(3, 1.5, "alice", "lobby", history=2),
    WhoList(3, 1.5, ("alice", "bob")),
    Chat(4, 2.0, "bob", "hi", False),
    Chat(5, 2.0, "bob", "waves", True, history=True),
    Joined(6, 2.0, "carol", "raw", 3),
    Left(7, 2.0, "carol", "too-slow", 2),
    Renamed(8, 2.0, "bob", "rob"),
    Problem(8, 2.0, "name-taken", "That name is taken."),
    Pong(8, 2.0, "t"),
    Goodbye(9, 2.0, "shutdown", "Server shutting down. Goodbye."),
    Moderation(10, 2.0, "operator", "ana", "", "ana is now an operator"),
    Moderation(11, 2.0, "mute", "bo", "ana", "bo is muted for 10 minutes by ana", minutes=10),
    TopicIs(11, 2.0, "Fractions", "ana"),
    TopicIs(11, 2.0),
    Welcome(12, 1.5, "bo", "lobby", topic="Fractions"),
    LoginNeeded(11, 2.0, ("SCRAM-SHA-256",), False, "This room needs a password."),
    LoginChallenge(11, 2.0, "r=abcdef,s=c2FsdA==,i=4096"),
    LoginOk(11, 2.0, "v=AAAA", operator=True),
]


class TestServerFrames:
    @pytest.mark.parametrize("frame", SERVER_FRAMES)
    def test_json_round_trip(self, frame: object) -> None:
        line = encode_json(frame)  # type: ignore[arg-type]
        obj = json.loads(line)
        assert obj["seq"] == frame.seq and "time" in obj  # type: ignore[attr-defined]
        assert parse_event(line[:-1]) == frame

    @pytest.mark.parametrize("frame", SERVER_FRAMES)
    def test_every_frame_has_a_readable_text_form(self, frame: object) -> None:
        text = encode_text(frame).decode()  # type: ignore[arg-type]
        assert text.endswith("\n") and text.strip()
        assert text[0] in "*![" and "\x1b" not in text

    def test_text_forms(self) -> None:
        assert encode_text(Chat(1, 0, "ana", "hi")).decode().endswith("] <ana> hi\n")
        assert encode_text(Chat(1, 0, "ana", "waves", True)).decode().endswith("] * ana waves\n")
        assert encode_text(Joined(2, 0, "bo", "raw", 2)) == b"* bo joined (2 here)\n"
        assert encode_text(Renamed(3, 0, "bo", "bob")) == b"* bo is now known as bob\n"
        assert encode_text(Problem(3, 0, "x", "Bad.")) == b"! Bad.\n"
        moderation = Moderation(4, 0, "operator", "ana", "", "ana is now an operator")
        assert encode_text(moderation) == b"* ana is now an operator\n"
        assert encode_text(TopicIs(4, 0, "Maths", "ana")) == b"* Topic: Maths (set by ana)\n"
        assert encode_text(TopicIs(4, 0)) == b"* No topic is set.\n"
        welcome = encode_text(Welcome(4, 0, "bo", "lobby", topic="Maths")).decode()
        assert welcome.splitlines()[:2] == ["* Welcome to lobby, bo.", "* Topic: Maths"]

    def test_history_is_marked_for_raw_clients(self) -> None:
        text = encode_history_text([Chat(1, 0, "ana", "old", history=True)]).decode()
        assert text.startswith("* Last 1 message:\n") and text.endswith("* End of history.\n")
        assert encode_history_text([]) == b""

    @pytest.mark.parametrize(
        "line", [b"{}", b'{"type":"message"}', b'{"type":"welcome","seq":"x"}']
    )
    def test_malformed_server_frames(self, line: bytes) -> None:
        with pytest.raises(FrameError):
            parse_event(line)


def test_limits_are_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    assert f"`MAX_LINE_BYTES` = {MAX_LINE_BYTES}" in doc
    assert f"`DETECT_SECONDS`, {DETECT_SECONDS}" in doc


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"type":"status","version":1}', "status"),
        (b'{"type":"probe"}', "probe"),
        (b'{"type":"hello","version":1}', None),
        (b"status", None),
        (b"{broken", None),
    ],
)
def test_service_requests(line: bytes, kind: str | None) -> None:
    assert service_request(line) == kind


@given(
    st.text(max_size=80),
    st.text(max_size=200),
    st.booleans(),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_the_direct_chat_encoding_is_the_same_json_as_to_dict(
    sender: str, text: str, action: bool, when: float
) -> None:
    """encode_json writes Chat frames directly (the hot path): the same JSON as to_dict."""
    chat = Chat(7, when, sender, text, action)
    line = encode_json(chat)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = json.loads(line)
    expected = chat.to_dict()
    assert decoded.pop("time") == pytest.approx(expected.pop("time"), abs=0.0006)
    assert decoded == expected


# Any JSON value, with strings that may hold lone surrogates (json.dumps writes them as \udXXX).
# (hypothesis merges character ranges by size: lone surrogates must be drawn on their own)
_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
_ANY_TEXT = st.lists(st.characters(exclude_categories=()) | _SURROGATES, max_size=12).map("".join)
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ("text", "name", "token", "client", "version", "exact", "reason", "minutes")


@given(
    st.sampled_from(
        [
            *("message", "action", "nick", "who", "ping", "bye", "hello", "status"),
            *("kick", "mute", "unmute", "ban", "topic"),
        ]
    ),
    st.fixed_dictionaries({}, optional={f: _ANY_TEXT | _ANY_JSON for f in _FIELDS}),
)
@settings(max_examples=400)
def test_every_parsed_string_can_be_encoded(kind: str, fields: dict[str, object]) -> None:
    """Whatever JSON a client sends, what the parser lets through encodes as UTF-8: a lone
    surrogate once took a seq number and then made every reader that encoded it raise."""
    line = json.dumps({"type": kind, **fields}).encode()  # ASCII: surrogates as escapes
    for parse in (parse_request, parse_hello):
        try:
            request = parse(line)
        except FrameError:
            continue
        if request is None:
            continue
        for value in request.to_dict().values():
            if isinstance(value, str):
                value.encode("utf-8")  # strict: raises on a surrogate
        if isinstance(request, Say):
            encode_json(Chat(1, 0.0, "alice", request.text, request.action)).decode("utf-8")
            encode_text(Chat(1, 0.0, "alice", request.text)).decode("utf-8")


def test_a_lone_surrogate_becomes_a_replacement_character_and_pairs_stay() -> None:
    line = b'{"type":"message","text":"x\\ud800y \\ud83d\\ude00 \\udfff"}'
    assert parse_request(line) == Say("x\ufffdy \U0001f600 \ufffd")
    assert parse_request(b'{"type":"ping","token":"\\udc00"}') == Ping("\ufffd")
    hello = parse_hello(b'{"type":"hello","version":1,"client":"x\\ud800"}')
    assert hello is not None and hello.client == "x\ufffd"


def test_encoding_a_frame_never_raises() -> None:
    """Belt and braces: even a surrogate that got past parsing is written, not raised."""
    bad = Chat(1, 0.0, "a\ud800", "b\udfff")
    assert encode_json(bad).count(b"\n") == 1
    assert encode_json(Chat(1, 0.0, "a", "b", history=True)).endswith(b"\n")
    assert encode_json(Pong(1, 0.0, "\ud800")).endswith(b"\n")
    assert encode_text(bad).endswith(b"\n")
    assert encode_history_text([bad]).endswith(b"* End of history.\n")


def test_an_empty_who_list_reads_as_a_sentence() -> None:
    assert render_line(WhoList(1, 0.0, (), 0)) == "* Nobody else is here yet."


def test_a_hello_carries_a_resume_and_a_malformed_one_is_ignored() -> None:
    hello = Hello(1, "ana", resume=Resume("ab12", 41))
    assert parse_hello(encode_request(hello)) == hello
    for bad in ({"epoch": 5, "seq": 1}, {"epoch": "e", "seq": -1}, {"epoch": "", "seq": 1}, 7):
        line = json.dumps({"type": "hello", "version": 1, "resume": bad}).encode()
        parsed = parse_hello(line)
        assert parsed is not None and parsed.resume is None


def test_welcome_epoch_and_gap_frames_round_trip() -> None:
    gap = Gap(9, 1.5, "history-trimmed", 3, 4, "Messages 3-4 are gone.")
    assert json.loads(encode_json(gap)) == {
        "type": "gap",
        "seq": 9,
        "time": 1.5,
        "reason": "history-trimmed",
        "from": 3,
        "to": 4,
        "message": "Messages 3-4 are gone.",
    }
    assert parse_event(encode_json(gap)) == gap
    welcome = Welcome(9, 1.5, "ana", "lobby", epoch="ab12")
    assert parse_event(encode_json(welcome)) == welcome
    assert encode_text(gap) == b"! Messages 3-4 are gone.\n"
