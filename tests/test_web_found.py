"""Found without typing: serve's banner (the page's address per LAN address, a QR code of it),
the TXT record's `web` key and discover's URL, and status naming a browser."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
import segno
from rich.console import Console

from conftest import run_lanchat
from lanchat.discovery import SERVICE_TYPE, group_rooms, parse_service, txt_properties
from lanchat.netinfo import LocalAddress
from lanchat.output.discovery import print_servers
from lanchat.output.serve import qr_text, serve_banner
from lanchat.output.status import _kind
from lanchat.serving import Listening, _off

ADDRESSES = (
    LocalAddress("192.168.1.23", "wlan0", 4, "255.255.255.0", True, ()),
    LocalAddress("2001:db8::23", "wlan0", 6, None, False, ()),
)


def banner(**listening: Any) -> str:
    info = Listening("", "::", 7420, "lobby", ADDRESSES, 10, (), _off(), **listening)
    out = StringIO()
    serve_banner(Console(file=out, width=200, no_color=True), info)
    return out.getvalue()


def test_the_banner_shows_the_page_for_each_address_and_a_qr_code_of_the_first() -> None:
    text = banner(web=True, qr=True)
    assert "http://192.168.1.23:7420/" in text
    assert "http://[2001:db8::23]:7420/" in text
    assert "▀" in text and "█" in text
    assert "phone's camera" in text
    assert "▀" not in banner(web=True, qr=False)
    no_web = banner(web=False, qr=True)
    assert "http://" not in no_web and "▀" not in no_web


def test_the_qr_code_drawn_is_segnos_matrix() -> None:
    """Read the half blocks back into modules: the same matrix segno made (so a camera that
    reads segno's codes reads this one)."""
    url = "http://192.168.1.23:7420/"
    lines = qr_text(url).plain.split("\n")
    top = {"▀": 1, "█": 1, "▄": 0, " ": 0}
    bottom = {"▀": 0, "█": 1, "▄": 1, " ": 0}
    drawn = [row for line in lines for row in ([top[c] for c in line], [bottom[c] for c in line])]
    expected = [
        list(r) for r in segno.make(url, error="m", boost_error=False).matrix_iter(border=2)
    ]
    assert drawn[: len(expected)] == [[int(bool(m)) for m in row] for row in expected]
    assert not any(any(row) for row in drawn[len(expected) :])


def test_serve_json_lists_the_page_urls(lanchat_process: Any) -> None:
    serve = lanchat_process("serve", "--port", "0", "--no-mdns", "--json")
    listening = serve.wait_json(lambda e: e.get("event") == "listening", timeout=10)
    port = listening["port"]
    assert all(u.startswith("http://") and u.endswith(f":{port}/") for u in listening["web"])
    assert serve.terminate() == 0
    off = lanchat_process("serve", "--port", "0", "--no-mdns", "--json", "--no-web")
    assert off.wait_json(lambda e: e.get("event") == "listening", timeout=10)["web"] is None
    assert off.terminate() == 0


def test_a_web_origin_that_is_not_an_origin_is_a_usage_error() -> None:
    result = run_lanchat("serve", "--no-mdns", "--port", "0", "--web-origin", "intranet/page")
    assert result.returncode == 2
    assert "--web-origin 'intranet/page' is not an origin" in result.stderr
    assert "Traceback" not in result.stderr


class Record:
    def __init__(self, properties: dict[str, str]) -> None:
        self.name = f"lobby on pc-7.{SERVICE_TYPE}"
        self.server = "pc-7.local."
        self.port = 7420
        self.properties = {k.encode(): v.encode() for k, v in properties.items()}

    def parsed_scoped_addresses(self) -> list[str]:
        return ["192.168.1.23"]


def test_the_txt_record_says_where_the_page_is_and_discover_shows_its_url() -> None:
    assert txt_properties("lobby", "1.0", web="/")["web"] == "/"
    assert "web" not in txt_properties("lobby", "1.0")
    server = parse_service(Record(txt_properties("lobby", "1.0", web="/")))
    assert server is not None and server.web == "/"
    assert server.web_url("192.168.1.23") == "http://192.168.1.23:7420/"
    assert json.loads(json.dumps(server.to_dict()))["web"] == "/"
    out = StringIO()
    print_servers(Console(file=out, width=200, no_color=True), group_rooms([server], []), 1.0)
    assert "In a browser (lobby): http://192.168.1.23:7420/" in out.getvalue()
    old = parse_service(Record(txt_properties("lobby", "1.0")))
    assert old is not None and old.web is None and old.web_url("192.168.1.23") is None


@pytest.mark.parametrize("value", ["page", "/a b", "/\x1b[31m", "/é"])
def test_a_strange_web_key_is_ignored_not_shown(value: str) -> None:
    properties = {**txt_properties("lobby", "1.0"), "web": value}
    server = parse_service(Record(properties))
    assert server is not None and server.web is None


def test_status_names_the_browser_of_a_web_client() -> None:
    assert _kind("web", "Firefox 128 on Android") == "web: Firefox 128 on Android"
    assert _kind("lanchat", "lanchat 0.1.0") == "lanchat"
    assert _kind(None, None) == ""
