"""web.page: does the relay's port answer a browser with its chat page (lanchat/web/)?

Asked of the relay on this PC (server mode, once server.bind found it running) or of HOST:PORT
(client mode, once TCP got through): one `GET /`, as a phone's browser would send it."""

from __future__ import annotations

from lanchat.doctor.probe.interface import PageResult
from lanchat.doctor.result import CheckResult, Fix
from lanchat.netinfo import host_port

PAGE_TIMEOUT = 2.0


def check_web_page(result: PageResult | None, address: str, port: int) -> CheckResult:
    """web.page: the chat page answers at http://ADDRESS:PORT/."""
    url = f"http://{host_port(address, port)}/"
    title = f"The chat page answers at {url}"
    if result is None:
        return CheckResult("web.page", title, "skip", "No relay to ask (see above).")
    facts = {"url": url, **result.to_dict()}
    if result.status == 200 and result.content_type.startswith("text/html") and result.csp:
        return CheckResult(
            "web.page",
            title,
            "pass",
            f"{result.detail}: the chat page ({result.size} bytes). Browsers (phones, school PCs) "
            f"join by opening {url}.",
            facts=facts,
        )
    if result.status == 308 and result.location.startswith("https://"):
        return CheckResult(
            "web.page",
            title,
            "pass",
            f"The relay takes TLS only (serve --tls): browsers are sent on to "
            f"{result.location}, where the chat page is (they warn about its self-signed "
            "certificate once).",
            facts=facts,
        )
    if result.status == 503:
        return CheckResult(
            "web.page",
            title,
            "warn",
            "The relay runs with --no-web: browsers get an error instead of the chat page.",
            fixes=(Fix("Restart the relay without --no-web to let browsers join."),),
            facts=facts,
        )
    return CheckResult(
        "web.page",
        title,
        "fail",
        f"{result.detail}, not lanchat's chat page. An older lanchat, or another program on "
        "that port, answered.",
        fixes=(Fix("Run a current `lanchat serve` there (the page comes with it)."),),
        facts=facts,
    )
