"""The operator console end to end: `flipper console` on a real redis-server, driven by Playwright in Debian's
headless chromium (one console and one browser for the module, a fresh browser context per test); its guards
(token, Host header, CSRF) spoken to directly with httpx.

FLIPPER_SCREENSHOT=1 also writes docs/console.png, the README's picture, from this run.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.servers import RedisServer
from flipper.core import model
from flipper.operate.cli import main
from tests.needs import CHROMIUM, skip_without_chromium

ACTOR = "console-tester@host"
OTHER = "other-operator@host"
ROOT = Path(__file__).resolve().parents[1]
# Headless and quiet: no GPU, no sandbox (CI runs as root), nothing fetched in the background.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def console(redis_server: RedisServer) -> Iterator[str]:
    """`flipper console` as an operator starts it, on any free port; yields the address it printed."""
    command = ["console", "--redis-url", redis_server.url, "--port", "0", "--actor", ACTOR]
    process = subprocess.Popen(
        [sys.executable, "-m", "flipper.operate.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    printed = [process.stdout.readline() for _ in range(2)]
    url = re.search(r"http://127\.0\.0\.1:[0-9]+/\?token=[\w-]+", "".join(printed))
    assert url, f"no address in {printed!r}"
    yield url[0]
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    skip_without_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def flags(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The console's Redis, emptied."""
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def page(browser: Browser, console: str, flags: redis.Redis) -> Iterator[Page]:
    """A fresh browser context (no cookie yet) on the printed address."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(console)
    yield page
    context.close()


def flipper(redis_server: RedisServer, *args: str) -> None:
    """Another operator, at a terminal, meanwhile (in a thread: Playwright's loop runs in this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as terminal:
        assert terminal.submit(main, [*args, "--redis-url", redis_server.url, "--actor", OTHER]).result() == 0


def evaluate_as(page: Page, *, version: str = "", groups: str = "", user: str = "", attributes: str = "") -> None:
    panel = page.locator("#evaluate")
    panel.get_by_label("Version").fill(version)
    panel.get_by_label("Groups").fill(groups)
    panel.get_by_label("User").fill(user)
    panel.get_by_label("Attributes").fill(attributes)
    panel.get_by_role("button", name="Evaluate").click()


def evaluated(page: Page, feature: str) -> str:
    return page.locator(f'#evaluate tr[data-feature="{feature}"]').inner_text()


def change_any(page: Page, feature: str, entity: str, operation: str, percentage: str = "") -> None:
    """The form under the table: any feature at any entity."""
    form = page.locator("form.new")
    form.get_by_label("Feature").fill(feature)
    form.get_by_label("Entity").fill(entity)
    form.get_by_label("Change").select_option(operation)
    form.get_by_label("Percentage").fill(percentage)
    form.get_by_role("button", name="Review the change").click()


def confirm(page: Page, *lines: str, message: str = "") -> None:
    """The dialog lists exactly `lines`; confirm it."""
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("ul.plan li")).to_have_text(list(lines))
    if message:
        dialog.get_by_label("Why").fill(message)
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("Done")


def test_enable_for_a_group_and_the_evaluate_panel_changes(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "enable", "checkout", "--group", "g2")
    page.reload()
    evaluate_as(page, groups="g1")
    row = page.locator('#evaluate tr[data-feature="checkout"]')
    expect(row.locator(".badge")).to_have_text("off")
    expect(row.locator(".why")).to_have_text("DEFAULT")
    change_any(page, "checkout", "group:g1", "enable")
    confirm(page, "+ checkout enabled at group:g1")
    assert flags.smembers("group:g1:positive") == {"checkout"}
    expect(row.locator(".badge")).to_have_text("on")
    expect(row.locator(".why")).to_have_text("TARGETING_MATCH enabled by group:g1:positive")
    expect(page.locator('#flags tr[data-feature="checkout"][data-entity="group:g1"] .state')).to_have_text("on")


def test_a_global_deny_beats_a_user_enable(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "enable", "checkout", "--user", "u1")
    page.reload()
    evaluate_as(page, user="u1")
    expect(page.locator('#evaluate tr[data-feature="checkout"] .badge')).to_have_text("on")
    change_any(page, "checkout", "global", "disable")
    confirm(page, "+ checkout disabled at global")
    assert flags.smembers("global:negative") == {"checkout"}
    assert evaluated(page, "checkout").split() == [
        *["checkout", "off", "TARGETING_MATCH"],
        *["enabled", "by", "user:u1:positive", "disabled", "by", "global:negative"],
    ]


def test_a_rollout_change_from_the_entitys_row(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "rollout", "search", "10", "--group", "beta")
    page.reload()
    row = page.locator('#flags tr[data-feature="search"][data-entity="group:beta"]')
    expect(row.locator(".state")).to_have_text("rollout 10%")
    row.get_by_label("Rollout percentage of search at group:beta").fill("25")
    row.get_by_role("button", name="Roll out search at group:beta").click()
    expect(page.get_by_role("dialog")).to_contain_text("Roll out search for group:beta at 25%?")
    confirm(page, "~ search rollout at group:beta: 10 → 25")
    assert flags.hgetall("group:beta:rollout") == {"search": "25"}
    expect(row.locator(".state")).to_have_text("rollout 25%")
    flipper(redis_server, "rollout", "search", "97.601", "--group", "beta")  # User;1's bucket: 97600
    page.reload()
    evaluate_as(page, groups="beta", user="User;1")
    assert evaluated(page, "search").split() == [
        *["search", "on", "SPLIT", "enabled", "by", "group:beta:rollout"],
        *["rollout", "group:beta:rollout", "at", "97.601%:", "bucket", "97600"],
    ]


def test_history_shows_the_actor_and_undo_restores_the_flags(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "enable", "dark", "--global")
    page.reload()
    row = page.locator('#flags tr[data-feature="dark"][data-entity="global"]')
    row.get_by_role("button", name="Disable dark for global").click()
    confirm(page, "+ dark disabled at global", "- dark no longer enabled at global", message="too dark")
    newest, older = page.locator("#history tbody tr").all()
    # Directly on Redis the actor is a claim, and shown as one.
    assert newest.locator(".actor").inner_text() == f"{ACTOR} (claimed)"
    expect(newest).to_contain_text("too dark")
    assert older.locator(".actor").inner_text() == f"{OTHER} (claimed)"
    undone = newest.get_attribute("data-entry")
    newest.get_by_role("button", name=f"Undo entry {undone}").click()
    confirm(page, "- dark no longer disabled at global", "+ dark enabled at global")
    assert (flags.smembers("global:positive"), flags.smembers("global:negative")) == ({"dark"}, set())
    top = page.locator("#history tbody tr").first
    expect(top).to_contain_text(f"undo of {undone}")
    assert top.locator(".actor").inner_text() == f"{ACTOR} (claimed)"


def test_an_undo_over_later_changes_is_refused_naming_them_unless_forced(
    page: Page, flags: redis.Redis, redis_server: RedisServer
) -> None:
    flipper(redis_server, "rollout", "dark", "10", "--global")
    flipper(redis_server, "rollout", "dark", "20", "--global")
    page.reload()
    later, first = (row.get_attribute("data-entry") for row in page.locator("#history tbody tr").all())
    page.get_by_role("button", name=f"Undo entry {first}").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#error")).to_have_text(
        f"entry {later} changed the same flags since {first}; --force undoes anyway"
    )
    assert flags.get("revision") == "2"
    page.get_by_role("button", name=f"Undo entry {first}").click()
    page.get_by_role("dialog").get_by_label("Undo anyway").check()
    confirm(page, "- dark rollout at global: 20 → -")  # what the undo changes now, not the entry's inverse
    assert flags.hgetall("global:rollout") == {}


def test_a_stale_page_is_refused_writes_nothing_and_shows_the_new_state(
    page: Page, flags: redis.Redis, redis_server
) -> None:
    flipper(redis_server, "enable", "dark", "--global")
    page.reload()
    page.get_by_role("button", name="Disable dark for global").click()
    expect(page.get_by_role("dialog")).to_contain_text("dark disabled at global")
    flipper(redis_server, "enable", "fresh", "--group", "beta")  # while the dialog is open
    revision = flags.get("revision")
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#error")).to_contain_text(
        "Not written: flags changed since this page was loaded (revision 1, now 2)"
    )
    assert (flags.get("revision"), flags.smembers("global:negative")) == (revision, set())
    expect(page.locator('#flags tr[data-feature="fresh"]')).to_contain_text("group:beta")
    # A page loaded before another change is refused already at the preview, before any dialog.
    flipper(redis_server, "enable", "fresher", "--global")
    page.get_by_role("button", name="Enable fresh for group:beta").click()
    expect(page.locator("#error")).to_contain_text("flags changed since this page was loaded (revision 2, now 3)")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#revision")).to_have_text("revision 3")


def test_the_dialog_is_modal_and_escape_cancels_without_writing(page: Page, flags: redis.Redis) -> None:
    change_any(page, "kb", "version:v1", "enable")
    expect(page.get_by_role("dialog").get_by_label("Why")).to_be_focused()
    assert page.evaluate("document.querySelector('dialog').matches(':modal')")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert flags.keys("*") == []
    change_any(page, "kb", "version:v1", "enable")
    expect(page.get_by_role("dialog").get_by_label("Why")).to_be_focused()
    page.keyboard.type("from the keyboard")  # the message field has the focus
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("Done: enable kb for version:v1")
    assert flags.smembers("version:v1:positive") == {"kb"}


def test_every_control_has_a_name_for_screen_readers(page: Page, redis_server) -> None:
    flipper(redis_server, "rollout", "search", "10", "--group", "beta")
    page.reload()
    unnamed = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, button, textarea:not([hidden])')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
             .map(e => e.outerHTML)"""
    )
    assert unnamed == []


def test_last_seen_beside_each_feature_and_a_filter_to_stale_ones(page: Page, flags: redis.Redis, redis_server) -> None:
    for feature in ("used", "forgotten", "never"):
        flipper(redis_server, "enable", feature, "--global")
    now_ms = int(flags.time()[0]) * 1000
    flags.hset("usage:evaluations", mapping={"used": 10, "forgotten": 2})
    flags.hset("usage:seen", mapping={"used": now_ms - 60_000, "forgotten": now_ms - 40 * 86_400_000})
    flags.set("usage:since", now_ms - 90 * 86_400_000)
    page.reload()
    seen = page.locator('#flags tr[data-feature="used"] th .seen')
    expect(seen).to_contain_text("last seen 20")
    expect(seen.locator("time")).to_have_text(re.compile(r"^[0-9-]+T[0-9:.]+Z$"))
    expect(page.locator('#flags tr[data-feature="never"] th .seen')).to_have_text("never evaluated")
    page.locator("form.filters").get_by_label("Not evaluated for").fill("30d")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    expect(page.locator("#flags tbody.feature th[scope=rowgroup]")).to_have_count(2)
    expect(page.locator('#flags tr[data-feature="used"]')).to_have_count(0)
    assert page.locator('#flags tr[data-feature="forgotten"]').is_visible()
    page.get_by_role("link", name="Show all").click()
    expect(page.locator("#flags tbody.feature")).to_have_count(3)
    page.locator("form.filters").get_by_label("Not evaluated for").fill("a month")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    expect(page.locator("#stale-error")).to_have_text(
        "duration 'a month' is not a count of days, hours, minutes or seconds: 30d, 12h, 15m or 90s"
    )
    expect(page.locator("#flags tbody.feature")).to_have_count(3)  # the flags still shown


def test_export_downloads_the_flags_and_apply_shows_the_plan_before_writing(
    page: Page, flags: redis.Redis, redis_server, tmp_path: Path
) -> None:
    flipper(redis_server, "enable", "dark", "--global")
    page.reload()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the flags file").click()
    exported = yaml.safe_load(Path(download.value.path()).read_text())
    assert exported == {"flipper": 1, "features": {"dark": {"enabled": ["global"]}}}
    edited = tmp_path / "flags.yaml"
    edited.write_text(yaml.safe_dump({"flipper": 1, "features": {"dark": {"rollout": {"group:beta": 50}}}}))
    upload = page.locator("#files")
    upload.get_by_label("Flags file").set_input_files(edited)
    upload.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("dialog").locator("ul.plan li")).to_have_text(
        ["- dark no longer enabled at global", "+ dark rollout at group:beta: - → 50"]
    )
    assert flags.smembers("global:positive") == {"dark"}  # nothing written by the plan
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("Done: applied flags.yaml, 2 memberships changed")
    assert (flags.smembers("global:positive"), flags.hgetall("group:beta:rollout")) == (set(), {"dark": "50"})


def test_a_file_that_is_not_a_flags_file_is_refused_naming_the_problem(page: Page, flags, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flipper: 1\nfeatures:\n  dark: {enabled: [planet:mars]}\n")
    page.locator("#files").get_by_label("Flags file").set_input_files(bad)
    page.locator("#files").get_by_role("button", name="Show the plan").click()
    expect(page.locator("#error")).to_have_text(
        "bad.yaml, line 3: feature 'dark', enabled: entity 'planet:mars' is not global, version:<v>, group:<g> or"
        " user:<u>"
    )
    assert flags.keys("*") == []


def test_placeholders_read_as_hints_and_are_shown_whole(page: Page) -> None:
    """A placeholder in the ink of a value reads as one filled in; one cut off reads as nothing."""
    fields = page.evaluate(
        """[...document.querySelectorAll('input[placeholder]')].map(input => {
             const style = getComputedStyle(input), hint = getComputedStyle(input, '::placeholder');
             const canvas = document.createElement('canvas').getContext('2d');
             canvas.font = `${hint.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
             // A number field keeps room for its spin buttons (15px in chromium) even while they are hidden.
             const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
                          - (input.type === 'number' ? 15 : 0);
             return {name: input.name, type: input.type, placeholder: input.placeholder, italic: hint.fontStyle,
                     fits: canvas.measureText(input.placeholder).width <= room,
                     lighter: hint.color !== style.color};
           })"""
    )
    assert {field["name"] for field in fields} >= {"name", "entity", "feature", "version", "groups", "user"}
    for field in fields:
        assert (field["name"], field["italic"], field["fits"], field["lighter"]) == (
            field["name"],
            "italic",
            True,
            True,
        ), field
        if field["type"] == "text":
            assert field["placeholder"].startswith("e.g. "), field
    entity = page.locator("form.new").get_by_label("Entity")
    assert entity.get_attribute("placeholder") == "e.g. global, version:v1, group:beta, user:42"


# The guards, without a browser: what a hostile page or a process without the token could send.


@pytest.fixture
def origin(console: str, flags: redis.Redis) -> Iterator[tuple[httpx.Client, str]]:
    """An httpx client holding the console's cookie, and the CSRF token of the page it loaded."""
    with httpx.Client(follow_redirects=True) as client:
        page = client.get(console)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert page.status_code == 200
        assert csrf
        yield client, csrf[1]


def enable_form(csrf: str | None) -> dict[str, str]:
    form = {"operation": "enable", "feature": "evil", "entity": "global", "revision": "0", "back": ""}
    return form | ({"csrf": csrf} if csrf else {})


def test_a_request_without_the_token_gets_403_and_changes_nothing(
    console: str, origin: tuple[httpx.Client, str], flags: redis.Redis
) -> None:
    client, csrf = origin
    base = console.partition("?")[0]
    assert httpx.get(base).status_code == 403
    assert httpx.get(base + "?token=not-the-token").status_code == 403
    assert httpx.get(base + "export").status_code == 403
    refused = httpx.post(base + "change", data=enable_form(csrf))  # the right CSRF token, but no cookie
    assert (refused.status_code, refused.text) == (
        403,
        "403 Forbidden: open the address `flipper console` printed: it holds the console's token\n",
    )
    assert flags.keys("*") == []
    assert client.post(base + "change", data=enable_form(csrf)).status_code == 200  # the same, with the cookie
    assert flags.smembers("global:positive") == {"evil"}


def test_a_foreign_host_header_is_refused_dns_rebinding(
    console: str, origin: tuple[httpx.Client, str], flags: redis.Redis
) -> None:
    client, csrf = origin
    base = console.partition("?")[0]
    port = base.rsplit(":", 1)[1].strip("/")
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{int(port) + 1}"):
        answer = client.post(base + "change", data=enable_form(csrf), headers={"host": host})
        assert answer.status_code == 403, host
        assert "Host header" in answer.text
    assert client.get(base, headers={"host": f"localhost:{port}"}).status_code == 200  # loopback's other name
    assert flags.keys("*") == []


def test_a_form_without_the_csrf_token_is_refused(
    console: str, origin: tuple[httpx.Client, str], flags: redis.Redis
) -> None:
    client, csrf = origin
    base = console.partition("?")[0]
    for form in (enable_form(None), enable_form(csrf[::-1])):
        for path in ("change", "preview/change", "undo", "apply"):
            answer = client.post(base + path, data=form)
            assert (answer.status_code, "CSRF" in answer.text) == (403, True), path
    assert flags.keys("*") == []


def test_the_token_is_traded_for_a_redirect_to_the_consoles_own_root_only(console: str) -> None:
    """`//evil.example/` as a path would be a redirect to another site: the redirect never follows the path."""
    base, _, query = console.partition("?")
    answer = httpx.get(f"{base}/evil.example/?{query}&name=x")  # base ends in "/": the path is //evil.example/
    assert (answer.status_code, answer.headers["location"]) == (303, "/?name=x")
    assert "flipper_console_" in answer.headers["set-cookie"]


def test_every_answer_forbids_scripts_and_frames_from_elsewhere(console: str, origin) -> None:
    client, _ = origin
    for path in ("", "static/console.css", "export"):
        policy = client.get(console.partition("?")[0] + path).headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy


def test_names_are_shown_as_text_never_as_markup(
    console: str, origin: tuple[httpx.Client, str], flags: redis.Redis
) -> None:
    client, _ = origin
    flags.sadd("group:<i>g</i>:positive", '<script>alert("x")</script>')  # written around Flipper
    page = client.get(console.partition("?")[0]).text
    assert "<script>alert" not in page
    assert "<i>g</i>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'data-entity="group:&lt;i&gt;g&lt;/i&gt;"' in page


def test_a_port_in_use_is_one_line_and_exit_1(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["console", "--port", port, "--redis-url", redis_server.url]) == 1
    assert capsys.readouterr().err == f"flipper: error: cannot serve on 127.0.0.1:{port}: Address already in use\n"


def test_the_printed_address_takes_connections_as_soon_as_it_is_printed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever reads the address may connect at once, before the server has started: never refused."""

    def connect_instead_of_serving(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        [url] = re.findall(r"http://\S+", capsys.readouterr().out)
        port = int(url.split(":")[2].split("/")[0])
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    monkeypatch.setattr(uvicorn.Server, "run", connect_instead_of_serving)
    assert main(["console", "--port", "0", "--redis-url", redis_server.url]) == 0


def test_a_wildcard_address_is_refused(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--host", "0.0.0.0", "--redis-url", redis_server.url]) == 1
    assert "not a wildcard" in capsys.readouterr().err


def test_screenshot(page: Page, flags: redis.Redis, redis_server, tmp_path: Path) -> None:
    """The README's picture: a realistic state, a caller evaluated. Written to docs/ with FLIPPER_SCREENSHOT=1."""
    for args in (
        ("enable", "checkout_v2", "--group", "beta", "-m", "beta testers first"),
        ("enable", "checkout_v2", "--version", "v2"),
        ("disable", "checkout_v2", "--user", "1337", "-m", "support ticket 4411"),
        ("rollout", "search_ranking", "25", "--global"),
        ("enable", "dark_mode", "--global"),
        ("enable", "new_onboarding", "--group", "staff"),
    ):
        flipper(redis_server, *args)
    page.reload()
    evaluate_as(page, version="v2", groups="beta", user="1337")
    expect(page.locator("#evaluate table")).to_be_visible()
    path = ROOT / "docs" / "console.png" if os.environ.get("FLIPPER_SCREENSHOT") == "1" else tmp_path / "console.png"
    page.screenshot(path=path, full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unreachable_store_is_a_fast_503_page_saying_so() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    command = ["console", "--redis-url", f"redis://127.0.0.1:{closed.getsockname()[1]}", "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "flipper.operate.cli", *command], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        url = re.search(r"http://\S+", process.stdout.readline() + process.stdout.readline())
        assert url
        with httpx.Client(follow_redirects=True, timeout=10) as client:  # a hang would time out
            answer = client.get(url[0])
        assert answer.status_code == 503
        assert "the flag store is unreachable" in answer.text
    finally:
        process.terminate()
        process.wait(timeout=10)
        closed.close()


def change_typed(page: Page, feature: str, entity: str, operation: str, *, value: str = "", variants: str = "") -> None:
    """The form under the table, setting or clearing a value or variants."""
    form = page.locator("form.new")
    form.get_by_label("Feature").fill(feature)
    form.get_by_label("Entity").fill(entity)
    form.get_by_label("Change").select_option(operation)
    form.get_by_label("Value (JSON)").fill(value)
    form.get_by_role("textbox", name=re.compile("^Variants")).fill(variants)
    form.get_by_role("button", name="Review the change").click()


def test_a_value_is_previewed_set_shown_served_and_cleared(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "enable", "button_color", "--global")
    page.reload()
    change_typed(page, "button_color", "group:beta", "value", value='{"shade": "<b>green</b>"}')
    expect(page.get_by_role("dialog")).to_contain_text('Set the value of button_color for group:beta to {"shade":')
    confirm(page, '+ button_color value at group:beta: - → {"shade":"<b>green</b>"}')
    assert flags.hgetall("group:beta:values") == {"button_color": '{"shade":"<b>green</b>"}'}
    row = page.locator('#flags tr[data-feature="button_color"][data-entity="group:beta"]')
    expect(row.locator(".state")).to_have_text('value {"shade":"<b>green</b>"}')  # as text, never as markup
    assert page.locator("#flags b").count() == 0
    evaluate_as(page, groups="beta", user="alice")
    served = page.locator('#evaluate tr[data-feature="button_color"]')
    expect(served.locator(".served")).to_have_text('{"shade":"<b>green</b>"}')
    expect(served.locator(".why")).to_contain_text("value from group:beta:values")
    row.get_by_role("button", name="Clear the value of button_color at group:beta").click()
    confirm(page, '- button_color value at group:beta: {"shade":"<b>green</b>"} → -')
    assert flags.exists("group:beta:values") == 0


def test_variants_are_previewed_set_shown_and_cleared_and_a_bad_one_writes_nothing(
    page: Page, flags: redis.Redis, redis_server
) -> None:
    flipper(redis_server, "enable", "checkout", "--global")
    page.reload()
    change_typed(page, "checkout", "global", "variants", variants='classic=60:"classic"\none_page=30:"one_page"')
    expect(page.locator("#error")).to_have_text("the variants' weights sum to 90, not 100")
    assert flags.exists("global:variants") == 0
    change_typed(page, "checkout", "global", "value", value="blue")
    expect(page.locator("#error")).to_have_text(
        """the value 'blue' is not JSON (Expecting value): a string is quoted, as '"blue"'"""
    )
    change_typed(page, "checkout", "global", "variants", variants='classic=50:"classic"\none_page=50:{"steps": 1}')
    confirm(page, '+ checkout variants: - → classic=50:"classic", one_page=50:{"steps":1}')
    assert flags.hgetall("global:variants") == {
        "checkout": '[{"name":"classic","value":"classic","weight":50},'
        '{"name":"one_page","value":{"steps":1},"weight":50}]'
    }
    row = page.locator('#flags tr[data-feature="checkout"][data-entity="global"]')
    expect(row.locator(".variants code")).to_have_text(['classic=50:"classic"', 'one_page=50:{"steps":1}'])
    evaluate_as(page, user="alice")
    bucket = model.variant_bucket("checkout", "alice")
    expect(page.locator('#evaluate tr[data-feature="checkout"] .why')).to_contain_text(
        f"variant {'classic' if bucket < 50_000 else 'one_page'}: variant bucket {bucket}"
    )
    row.get_by_role("button", name="Clear the variants of checkout").click()
    confirm(page, '- checkout variants: classic=50:"classic", one_page=50:{"steps":1} → -')
    assert flags.exists("global:variants") == 0


def test_the_plan_dialog_shows_its_warnings_and_the_export_what_it_left_out(
    page: Page, flags: redis.Redis, tmp_path: Path
) -> None:
    flags.set("group:<i>bad</i>:positive", "x")  # a key of the wrong type: left out of the export, named
    page.reload()
    expect(page.locator("#export-warnings li")).to_have_text(
        ["key 'group:<i>bad</i>:positive' holds a string, not a set: left out (redis-cli DEL it, or mend it)"]
    )
    assert page.locator("#files i").count() == 0
    flags.delete("group:<i>bad</i>:positive")
    page.reload()
    lookalike = tmp_path / "flags.yaml"
    lookalike.write_text("flipper: 1\nfeatures:\n  \u0441heckout: {enabled: [global]}\n", encoding="utf-8")
    page.locator("#files").get_by_label("Flags file").set_input_files(lookalike)
    page.locator("#files").get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("dialog").locator("ul.warnings li")).to_have_text(
        [re.compile(r"^warning: feature name '\u0441heckout' mixes scripts \(U\+0441 CYRILLIC SMALL LETTER ES")]
    )
    assert flags.keys("*") == []  # the plan wrote nothing


def add_rule(page: Page, feature: str, conditions: str, value: str = "") -> None:
    """The form under the table, adding a rule to a feature (rules are the feature's: at global)."""
    form = page.locator("form.new")
    form.get_by_label("Feature").fill(feature)
    form.get_by_label("Entity").fill("global")
    form.get_by_label("Change").select_option("add_rule")
    form.get_by_label("Value (JSON)").fill(value)
    form.get_by_role("textbox", name=re.compile("^Rule: conditions")).fill(conditions)
    form.get_by_role("button", name="Review the change").click()


def test_a_rule_is_previewed_added_shown_in_words_and_removed(page: Page, flags: redis.Redis, redis_server) -> None:
    add_rule(page, "new_pricing", "plan in pro,enterprise\ncountry not_in US")
    expect(page.get_by_role("dialog")).to_contain_text(
        "Add a rule to new_pricing: rule 1. plan is pro or enterprise, and country is not US?"
    )
    confirm(page, "+ new_pricing rules: - → 1. plan is pro or enterprise, and country is not US")
    assert json.loads(flags.hget("global:rules", "new_pricing")) == [
        {
            "when": [
                {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]},
                {"attribute": "country", "operator": "not_in", "values": ["US"]},
            ]
        }
    ]
    add_rule(page, "new_pricing", "email ends_with @acme.com", value='"<b>gold</b>"')
    confirm(
        page,
        "~ new_pricing rules: 1. plan is pro or enterprise, and country is not US → 1. plan is pro or enterprise,"
        ' and country is not US; 2. email ends with @acme.com → "<b>gold</b>"',
    )
    row = page.locator('#flags tr[data-feature="new_pricing"][data-entity="global"]')
    expect(row.locator(".rules li")).to_have_text(
        [
            "1. plan is pro or enterprise, and country is not US Remove",
            '2. email ends with @acme.com → "<b>gold</b>" Remove',
        ]
    )
    assert page.locator("#flags b").count() == 0  # as text, never as markup
    expect(row.locator(".next-change")).to_have_count(0)  # no rule on now: nothing changes by itself
    row.get_by_role("button", name="Remove rule 1 of new_pricing").click()
    expect(page.get_by_role("dialog")).to_contain_text(
        "Remove a rule of new_pricing: rule 1. plan is pro or enterprise, and country is not US?"
    )
    confirm(
        page,
        "~ new_pricing rules: 1. plan is pro or enterprise, and country is not US; 2. email ends with @acme.com"
        ' → "<b>gold</b>" → 1. email ends with @acme.com → "<b>gold</b>"',
    )
    row.get_by_role("button", name="Remove rule 1 of new_pricing").click()
    confirm(page, '- new_pricing rules: 1. email ends with @acme.com → "<b>gold</b>" → -')
    assert flags.exists("global:rules") == 0
    assert flags.sismember("features", "new_pricing")


def test_a_scheduled_feature_shows_its_next_change(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(
        redis_server,
        "schedule",
        "winter_sale",
        "--from",
        "2020-12-20T00:00:00Z",
        "--until",
        "2099-01-06T01:00:00+01:00",
    )
    flipper(redis_server, "schedule", "launch", "--from", "2098-03-01T09:30:00Z")
    page.reload()
    sale = page.locator('#flags tr[data-feature="winter_sale"][data-entity="global"]')
    expect(sale.locator(".rules li")).to_have_text(
        ["1. now is after 2020-12-20T00:00:00Z, and now is before 2099-01-06T01:00:00+01:00 Remove"]
    )
    # The window opened already: its next change is when it closes, in UTC.
    expect(sale.locator(".next-change")).to_have_text("next change 2099-01-06T00:00:00.000Z")
    launch = page.locator('#flags tr[data-feature="launch"][data-entity="global"]')
    expect(launch.locator(".next-change")).to_have_text("next change 2098-03-01T09:30:00.000Z")


def test_a_caller_with_attributes_is_evaluated_by_the_rules(page: Page, flags: redis.Redis, redis_server) -> None:
    flipper(redis_server, "rule", "add", "new_pricing", "--when", "plan in pro,enterprise", "--when", "seats gte 10")
    page.reload()
    evaluate_as(page, user="u1", attributes="plan=pro, seats=12")
    assert evaluated(page, "new_pricing").split() == [
        *["new_pricing", "on", "TARGETING_MATCH", "rule", "1", "held:"],
        *["plan", "is", "pro", "or", "enterprise,", "and", "seats", "is", "at", "least", "10"],
    ]
    evaluate_as(page, user="u1", attributes="plan=pro seats=9")  # numeric text is a number: 9 is below 10
    assert evaluated(page, "new_pricing").split() == ["new_pricing", "off", "DEFAULT", "no", "rule", "held"]
    evaluate_as(page, attributes="now=2030-01-01T00:00:00Z")  # refused as the API refuses it, the flags still shown
    expect(page.locator("#evaluate-error")).to_contain_text("attribute 'now' is the time of the evaluation")
    expect(page.locator('#flags tr[data-feature="new_pricing"]')).to_have_count(1)


def test_a_bad_rule_is_refused_on_the_page_and_a_stale_removal_writes_nothing(
    page: Page, flags: redis.Redis, redis_server
) -> None:
    add_rule(page, "f", "plan like pro")
    expect(page.locator("#error")).to_contain_text("rule 1, operator 'like': unknown; operators are in, not_in")
    add_rule(page, "f", "app semver_gte 2.1")
    expect(page.locator("#error")).to_contain_text("rule 1, operator 'semver_gte': '2.1' is not a semantic version")
    add_rule(page, "f", "")
    expect(page.locator("#error")).to_contain_text("rule 1: when must be a non-empty list of conditions")
    assert flags.keys("*") == []
    flipper(redis_server, "rule", "add", "f", "--when", "plan in pro")
    page.reload()
    page.get_by_role("button", name="Remove rule 1 of f").click()
    expect(page.get_by_role("dialog")).to_contain_text("- f rules: 1. plan is pro → -")
    flipper(redis_server, "rule", "add", "f", "--when", "plan in team")  # another operator, meanwhile
    stored = flags.hget("global:rules", "f")
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#error")).to_contain_text("Not written: flags changed since this page was loaded")
    assert flags.hget("global:rules", "f") == stored  # theirs kept: the removal did not write the list it read
    expect(page.locator('#flags tr[data-feature="f"] .rules li')).to_have_text(
        ["1. plan is pro Remove", "2. plan is team Remove"]
    )
