"""SCRAM-SHA-256(-PLUS) without sockets: RFC 7677's test vector, both sides against each other,
channel binding and downgrades, replays, and garbage from either side (hypothesis)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanchat.protocol import FrameError
from lanchat.protocol.scram import (
    MECHANISM,
    MECHANISM_PLUS,
    MIN_ITERATIONS,
    ScramClient,
    ScramError,
    ScramServer,
    Verifier,
    channel_binding,
    matching,
    mechanisms,
    prepare,
)

# RFC 7677 section 3: user "user", password "pencil".
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

FAST = MIN_ITERATIONS  # the tests' verifiers: the RFC's minimum, so each login is ~1 ms
BINDING = b"\x01" * 32  # stands for a certificate's SHA-256 (tls-server-end-point)


ROOM_PASSWORD = "correct horse"


def verifiers(secret: str = ROOM_PASSWORD) -> dict[str, Verifier]:
    return {"room": Verifier.make(secret, iterations=FAST)}


def log_in(
    client: ScramClient, server: ScramServer, mechanism: str | None = None
) -> tuple[str, str, str, str]:
    first = client.first()
    challenge = server.first(mechanism or client.mechanism, first)
    final = client.final(challenge)
    answer = server.final(final)
    client.check(answer)
    return first, challenge, final, answer


class TestRfc7677Vector:
    def test_the_client_says_exactly_what_the_rfc_says(self) -> None:
        client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
        assert client.mechanism == MECHANISM
        assert client.first() == RFC_CLIENT_FIRST
        assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
        client.check(RFC_SERVER_FINAL)  # the server proved itself

    def test_the_server_says_exactly_what_the_rfc_says(self) -> None:
        verifier = Verifier.make("pencil", salt=RFC_SALT, iterations=4096)
        server = ScramServer({"user": verifier}.get, nonce=RFC_SERVER_NONCE)
        assert server.first(MECHANISM, RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
        assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
        assert server.username == "user"

    def test_the_verifier_holds_no_password(self) -> None:
        verifier = Verifier.make("pencil", salt=RFC_SALT, iterations=4096)
        assert b"pencil" not in verifier.stored_key + verifier.server_key + verifier.salt
        assert "stored_key" not in repr(verifier) and "server_key" not in repr(verifier)


class TestLogins:
    def test_right_password_both_sides_are_satisfied(self) -> None:
        server = ScramServer(verifiers().get)
        log_in(ScramClient("room", "correct horse"), server)
        assert server.username == "room"

    def test_wrong_password_is_refused_at_the_proof(self) -> None:
        server = ScramServer(verifiers().get)
        client = ScramClient("room", "wrong horse")
        challenge = server.first(MECHANISM, client.first())
        with pytest.raises(ScramError) as refused:
            server.final(client.final(challenge))
        assert refused.value.code == "wrong-password"
        assert isinstance(refused.value, FrameError)

    def test_unknown_user_is_refused(self) -> None:
        with pytest.raises(ScramError) as refused:
            ScramServer(verifiers().get).first(MECHANISM, ScramClient("nobody", "x").first())
        assert refused.value.code == "unknown-user"

    def test_a_recorded_final_message_does_not_log_in_again(self) -> None:
        v = verifiers()
        _, _, final, _ = log_in(ScramClient("room", "correct horse"), ScramServer(v.get))
        again = ScramServer(v.get)  # a new connection: a new server nonce
        again.first(MECHANISM, final_first(final))
        with pytest.raises(ScramError):
            again.final(final)

    def test_a_final_message_is_good_for_one_proof_only(self) -> None:
        server = ScramServer(verifiers().get)
        client = ScramClient("room", "correct horse")
        final = client.final(server.first(MECHANISM, client.first()))
        server.final(final)
        with pytest.raises(ScramError):
            server.final(final)

    def test_a_server_without_the_verifier_is_caught_by_the_client(self) -> None:
        impostor = ScramServer({"room": Verifier.make("guessed", iterations=FAST)}.get)
        client = ScramClient("room", "correct horse")
        challenge = impostor.first(MECHANISM, client.first())
        client.final(challenge)
        fake = "v=" + base64.b64encode(b"\0" * 32).decode()
        with pytest.raises(ScramError) as refused:
            client.check(fake)
        assert refused.value.code == "server-not-verified"

    def test_the_client_refuses_too_few_iterations(self) -> None:
        client = ScramClient("room", "pw", nonce="abc")
        with pytest.raises(ScramError):
            client.final("r=abcdef,s=c2FsdA==,i=1000")

    def test_the_client_refuses_a_nonce_that_is_not_its_own(self) -> None:
        client = ScramClient("room", "pw", nonce="abc")
        with pytest.raises(ScramError):
            client.final("r=xyzdef,s=c2FsdA==,i=4096")

    def test_the_server_refuses_an_unknown_mechanism(self) -> None:
        with pytest.raises(ScramError):
            ScramServer(verifiers().get).first("PLAIN", "n,,n=room,r=abc")

    def test_usernames_with_commas_and_equals_are_escaped(self) -> None:
        v = {"a,b=c": Verifier.make("pw", iterations=FAST)}
        client = ScramClient("a,b=c", "pw")
        assert "n=a=2Cb=3Dc," in client.first()
        server = ScramServer(v.get)
        log_in(client, server)
        assert server.username == "a,b=c"


def final_first(final: str) -> str:
    """A client-first that leads to a challenge, for replaying `final` against."""
    nonce = final.split(",r=", 1)[1].split(",", 1)[0]
    return f"n,,n=room,r={nonce[:24]}"


class TestChannelBinding:
    def test_plus_with_the_same_binding_logs_in(self) -> None:
        client = ScramClient("room", "correct horse", binding=BINDING)
        assert client.mechanism == MECHANISM_PLUS
        assert client.first().startswith("p=tls-server-end-point,,")
        log_in(client, ScramServer(verifiers().get, binding=BINDING))

    def test_another_certificate_in_between_fails_the_proof(self) -> None:
        # A relay in the middle terminates TLS with its own certificate: the client's
        # binding is of that certificate, the real relay's binding is of its own.
        client = ScramClient("room", "correct horse", binding=b"\x02" * 32)
        server = ScramServer(verifiers().get, binding=BINDING)
        challenge = server.first(MECHANISM_PLUS, client.first())
        with pytest.raises(ScramError) as refused:
            server.final(client.final(challenge))
        assert refused.value.code == "channel-binding"

    @pytest.mark.parametrize("flag", ["n", "y"])
    def test_a_tls_server_refuses_a_client_without_binding(self, flag: str) -> None:
        server = ScramServer(verifiers().get, binding=BINDING)
        for mechanism in (MECHANISM, MECHANISM_PLUS):
            with pytest.raises(ScramError) as refused:
                server.first(mechanism, f"{flag},,n=room,r=abcdef")
            assert refused.value.code == "channel-binding"

    def test_a_plain_server_refuses_channel_binding(self) -> None:
        server = ScramServer(verifiers().get)
        with pytest.raises(ScramError) as refused:
            server.first(MECHANISM_PLUS, ScramClient("room", "x", binding=BINDING).first())
        assert refused.value.code == "channel-binding"
        with pytest.raises(ScramError):
            server.first(MECHANISM, "p=tls-server-end-point,,n=room,r=abcdef")

    def test_a_plain_server_accepts_y(self) -> None:
        # "y": the client could bind but believes the server cannot; true on plain TCP.
        server = ScramServer(verifiers().get)
        assert server.first(MECHANISM, "y,,n=room,r=abcdef").startswith("r=abcdef")

    def test_an_unknown_binding_type_is_refused(self) -> None:
        server = ScramServer(verifiers().get, binding=BINDING)
        with pytest.raises(ScramError):
            server.first(MECHANISM_PLUS, "p=tls-unique,,n=room,r=abcdef")

    def test_the_mechanisms_offered(self) -> None:
        assert mechanisms(None) == (MECHANISM,)
        assert mechanisms(BINDING) == (MECHANISM_PLUS,)


class TestCleartext:
    def test_matching_names_every_secret_the_password_is(self) -> None:
        salt = b"s" * 16
        v = {
            "room": Verifier.make("one", salt=salt, iterations=FAST),
            "operator": Verifier.make("two", salt=salt, iterations=FAST),
        }
        assert matching(v, "one") == ["room"]
        assert matching(v, "two") == ["operator"]
        assert matching(v, "three") == []

    def test_preparation_folds_spaces_widths_and_invisible_characters(self) -> None:
        assert prepare("pass\u00a0word") == b"pass word"
        assert prepare("\uff50\uff41\uff53\uff53")  # fullwidth == b"pass"
        assert prepare("pa\u00adss") == b"pass"
        assert prepare("caf\u0065\u0301") == "café".encode()


_messages = st.one_of(
    st.text(max_size=300),
    st.lists(st.tuples(st.sampled_from("nrcpsimvea"), st.text(max_size=40)), max_size=6).map(
        lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)
    ),
)


class TestGarbage:
    @settings(max_examples=300, deadline=None)
    @given(
        mechanism=st.sampled_from([MECHANISM, MECHANISM_PLUS, "x"]),
        first=_messages,
        final=_messages,
    )
    def test_the_server_raises_only_scram_errors(
        self, mechanism: str, first: str, final: str
    ) -> None:
        for binding in (None, BINDING):
            server = ScramServer(verifiers().get, binding=binding)
            try:
                server.first(mechanism, first)
            except ScramError:
                pass
            with pytest.raises(ScramError):
                server.final(final)

    @settings(max_examples=300, deadline=None)
    @given(challenge=_messages, answer=_messages)
    def test_the_client_raises_only_scram_errors(self, challenge: str, answer: str) -> None:
        client = ScramClient("room", "pw", nonce="abc")
        try:
            client.final(challenge)
        except ScramError:
            pass
        try:
            client.check(answer)
        except ScramError:
            pass


def test_a_tls_socket_is_told_by_its_channel_binding() -> None:
    class TlsLike:
        def channel_binding(self) -> bytes:
            return BINDING

    assert channel_binding(TlsLike()) == BINDING
    assert channel_binding(object()) is None  # a plain socket has none
