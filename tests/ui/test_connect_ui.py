"""The Integrations UI in headless Chromium against `hourbridge serve` and the sandboxes."""

import json
import re
import urllib.request

from playwright.sync_api import expect

from conftest import axe, open_ui, shot

HARVEST = ("demo-harvest-client", "demo-harvest-secret")


def main(page):
    return page.locator("#main")


def card(page, provider):
    return page.locator(f'li.card[data-provider="{provider}"]')


def connect_harvest(page, world, ws):
    open_ui(page, world, ws["tokens"]["ada"])
    harvest = card(page, "harvest")
    expect(harvest).to_contain_text("Not connected")
    shot(page, "01-integrations-list")
    harvest.get_by_role("button", name="Connect Harvest").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connect Harvest")
    redirect = page.get_by_label("Redirect URL", exact=True)
    expect(redirect).to_have_value(world.base + "/oauth/harvest/callback")
    page.get_by_role("button", name="Copy the redirect URL").click()
    expect(main(page).get_by_text("Copied")).to_be_visible()
    page.get_by_label("Client ID").fill(HARVEST[0])
    page.get_by_label("Client secret").fill(HARVEST[1])
    shot(page, "02-connect-harvest-customer-oauth")
    with page.context.expect_page() as popup:
        page.get_by_role("button", name="Save and authorize").click()
    popup.value.wait_for_load_state()
    expect(main(page).get_by_text(re.compile(r"Harvest is connected"))).to_be_visible()
    page.get_by_role("button", name="Done").click()
    expect(card(page, "harvest").locator(".badge")).to_have_text("Connected")


def test_headers_and_assets(world):
    with urllib.request.urlopen(world.base + "/connect") as res:
        assert res.headers["Content-Type"].startswith("text/html")
        csp = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors" in csp
        assert res.headers["Referrer-Policy"] == "no-referrer"
    for name in ("app.js", "app.css"):
        with urllib.request.urlopen(world.base + "/connect/" + name) as res:
            assert res.status == 200


def test_harvest_end_to_end_link_reset_and_sync_missing_people(world, page):
    ws = world.workspace()
    connect_harvest(page, world, ws)
    shot(page, "03-integrations-list-connected")

    # A manager links the project, previews, resets and syncs with visible progress.
    open_ui(page, world, ws["tokens"]["bob"], project=ws["project"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Project integration settings")
    sec = page.locator('section.link[data-provider="harvest"]')
    sec.get_by_label("Sync with Harvest").check()
    sec.get_by_label("Search Harvest projects").fill("Fleet")
    sec.get_by_label(re.compile(r"^Fleet Portal")).check()
    sec.get_by_label("Search Harvest projects").fill("")
    sec.get_by_label(re.compile(r"^Mobile App")).check()
    expect(sec.locator(".chips li")).to_have_count(2)
    sec.get_by_label("Sync from").fill("2026-01-01")
    sec.get_by_label("Trim assignments to work logs").check()
    expect(sec.get_by_text("A new assignment spans")).to_be_visible()
    sec.get_by_role("button", name="Save").click()
    expect(sec.get_by_text("Saved.")).to_be_visible()
    sec.get_by_role("button", name="Preview").click()
    expect(sec.get_by_role("heading", name="Preview: what would change")).to_be_visible()
    shot(page, "04-project-settings-preview")
    sec.get_by_role("button", name="Reset and sync all work logs").click()
    run = sec.locator(".run")
    # The progress bar is live while the run runs (the sandbox answers slowly): the page showed
    # the run queued or running before it ended.
    expect(run.locator("progress")).to_be_visible()
    expect(run.get_by_text(re.compile(r"records processed"))).to_be_visible()
    shot(page, "05-reset-and-sync-progress")
    expect(run).to_have_attribute("data-state", "succeeded", timeout=90000)
    expect(run).to_have_attribute("data-was-running", "true")
    expect(run.locator("progress")).to_have_attribute("value", "100")
    expect(run.get_by_text(re.compile(r"^Synchronized successfully at \d{4}-\d\d-\d\d \d\d:\d\d$"))).to_be_visible()
    created = run.locator("dl.counts dd").first
    assert int(created.inner_text()) > 0
    missing = sec.locator(".missing")
    expect(missing).to_contain_text("add them as Manager or Employee with this e-mail")
    shot(page, "06-missing-people")
    assert axe(page) == [], "project settings with a finished run and missing people"
    # A manager may not add people: the buttons are an admin's.
    expect(missing.get_by_role("button")).to_have_count(0)

    # The admin adds a missing person as Employee.
    open_ui(page, world, ws["tokens"]["ada"], project=ws["project"])
    missing = page.locator('section.link[data-provider="harvest"] .missing')
    row = missing.locator("tbody tr").first
    row.get_by_role("button", name="Add as Employee").click()
    expect(row.get_by_text("Added")).to_be_visible()

    # Clear data, with a confirmation.
    sec = page.locator('section.link[data-provider="harvest"]')
    sec.get_by_role("button", name="Clear data").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("deletes every work log synced from Harvest")
    shot(page, "07-clear-data-confirmation")
    dialog.get_by_role("button", name="Clear data").click()
    expect(sec.get_by_text(re.compile(r"Deleted \d+ work logs"))).to_be_visible()

    # The list shows the exact status label and the next run; then disconnect says what stays.
    open_ui(page, world, ws["tokens"]["ada"])
    harvest = card(page, "harvest")
    expect(harvest.locator(".status-label")).to_have_text(re.compile(r"^(Synchronized successfully at|Not synchronized yet|Synchronization in progress)"))
    expect(harvest).to_contain_text(re.compile(r"Next run: \d{4}-\d\d-\d\d \d\d:\d\d"))
    harvest.get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Work logs already synced stay")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_basecamp_platform_oauth_with_account_choice(world, page):
    ws = world.workspace()
    open_ui(page, world, ws["tokens"]["ada"])
    # Only the owner connects Basecamp: an admin sees no button for it.
    expect(card(page, "basecamp").get_by_role("button")).to_have_count(0)
    open_ui(page, world, ws["tokens"]["olga"])
    card(page, "basecamp").get_by_role("button", name="Connect Basecamp").click()
    picker = page.get_by_label("Synchronize at")
    expect(picker.locator("option")).to_have_count(96)
    picker.select_option("18:30")
    expect(main(page).get_by_text("Europe/Oslo")).to_be_visible()
    shot(page, "08-connect-basecamp-platform-oauth")
    with page.context.expect_page() as popup:
        page.get_by_role("button", name="Connect", exact=True).click()
    popup.value.wait_for_load_state()
    accounts = page.locator("fieldset.accounts")
    expect(accounts).to_be_visible()
    shot(page, "09-basecamp-account-choice")
    assert axe(page) == [], "account choice"
    accounts.get_by_role("button", name="Use this account").click()
    expect(main(page).get_by_text(re.compile(r"Basecamp is connected to"))).to_be_visible()
    page.get_by_role("button", name="Done").click()
    bc = card(page, "basecamp")
    expect(bc.locator(".badge")).to_have_text("Connected")
    expect(bc).to_contain_text(re.compile(r"Next run: \d{4}-\d\d-\d\d 18:30"))
    # Edit: another time of day moves the next run; the tokens stay.
    bc.get_by_role("button", name="Edit Basecamp").click()
    expect(page.get_by_label("Synchronize at")).to_have_value("18:30")
    page.get_by_label("Synchronize at").select_option("07:45")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(main(page).get_by_text(re.compile(r"settings saved\. Next run: \d{4}-\d\d-\d\d 07:45"))).to_be_visible()


def test_timelog_credential_set_with_field_errors(world, page):
    ws = world.workspace()
    open_ui(page, world, ws["tokens"]["ada"])
    card(page, "timelog").get_by_role("button", name="Connect TimeLog").click()
    values = {
        "Domain": world.timelog_domain,
        "Account name": "acme-tl",
        "Username": "hourbridge.sync@acme.test",
        "Password": "wrong-password",
        "Site code": "7F3A9C21D8E64B0F",
        "Reporting API ID": "hourbridge-reporting",
        "Reporting API password": "reporting-secret-7731",
    }
    for label, value in values.items():
        page.get_by_label(re.compile("^" + re.escape(label) + r" \(required\)$")).fill(value)
    expect(page.locator(".help")).to_have_count(7)
    page.get_by_role("button", name="Activate").click()
    pw = page.get_by_label(re.compile(r"^Password \(required\)$"))
    expect(pw).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-field="password"] .field-error')).to_be_visible()
    expect(page.locator('[data-field="domain"] .field-error')).to_be_hidden()
    shot(page, "10-connect-timelog-field-errors")
    assert axe(page) == [], "credential set with field errors"
    pw.fill("Sandbox-TimeLog-2026")
    page.get_by_role("button", name="Activate").click()
    expect(main(page).get_by_text("TimeLog is activated.")).to_be_visible()
    page.get_by_role("button", name="Done").click()
    tl = card(page, "timelog")
    expect(tl.locator(".badge")).to_have_text("Connected")
    # Person links with e-mail suggestions.
    tl.get_by_role("button", name="Person links").click()
    rows = page.locator("tr[data-remote-user]")
    expect(rows.first).to_be_visible()
    suggested = page.locator("tr[data-remote-user]", has_text="Suggested by e-mail").first
    expect(suggested).to_be_visible()
    shot(page, "11-timelog-person-links")
    assert axe(page) == [], "person links"
    suggested.get_by_role("button", name="Link").click()
    expect(page.locator("tr[data-remote-user]", has_text="Linked").first).to_be_visible()
    page.get_by_role("button", name="← Back to integrations").click()
    # A project linked to one TimeLog project (a single choice, no sync-from day).
    page.get_by_role("button", name="Project settings").click()
    sec = page.locator('section.link[data-provider="timelog"]')
    sec.get_by_label("Sync with TimeLog").check()
    expect(sec.get_by_role("heading", name="Select the project")).to_be_visible()
    expect(sec.get_by_label("Sync from")).to_have_count(0)
    first = sec.locator(".picker input[type=radio]").first
    first.check()
    expect(sec.locator(".chips li")).to_have_count(1)
    sec.get_by_role("button", name="Save").click()
    expect(sec.get_by_text("Saved.")).to_be_visible()
    page.get_by_role("button", name="Integrations", exact=True).click()
    # Synchronize now from the list: the card follows the run, then shows its status label.
    tl = card(page, "timelog")
    tl.get_by_role("button", name="Synchronize now").click()
    expect(card(page, "timelog").locator(".status-label")).to_have_text(
        re.compile(r"^(Synchronized successfully|There was an error) at \d{4}-\d\d-\d\d \d\d:\d\d$"), timeout=60000)


def test_tripletex_session_token_test_confirm_start_and_review(world, page):
    ws = world.workspace()
    open_ui(page, world, ws["tokens"]["ada"])
    tx = card(page, "tripletex")
    expect(tx).to_contain_text("add-on")
    expect(tx.get_by_role("button")).to_have_count(0)
    ws["service"].ok("PUT", "/v1/workspace/addons/tripletex")
    # Same-name customers, told apart on the review list by organisation number.
    ws["owner"].ok("POST", "/v1/customers", {"name": "Hansen Rorlegger ENK"})
    open_ui(page, world, ws["tokens"]["ada"])
    card(page, "tripletex").get_by_role("button", name="Connect Tripletex").click()
    token = page.get_by_label(re.compile(r"^Employee token"))
    token.fill("not-a-token")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Test API").click()
    expect(token).to_have_attribute("aria-invalid", "true")
    token.fill("test-fjordtech-employee-token-0001")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[data-state="pending_test"]')).to_be_visible()
    page.get_by_role("button", name="Test API").click()
    expect(main(page).get_by_text(re.compile(r"The token works for Fjordtech AS"))).to_be_visible()
    shot(page, "12-connect-tripletex-test-api")
    assert axe(page) == [], "session token window"
    page.get_by_role("button", name="Confirm").click()
    expect(main(page).get_by_text("Tick the box")).to_be_visible()
    page.get_by_label(re.compile(r"Yes, synchronize this company")).check()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("button", name="Start synchronization").click()
    expect(page.locator(".run")).to_have_attribute("data-state", "succeeded", timeout=60000)
    shot(page, "13-tripletex-first-sync")
    page.get_by_role("button", name="Open the review list").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tripletex review list")
    items = page.locator("li[data-review]")
    expect(items.first).to_be_visible()
    expect(main(page).get_by_text(re.compile(r"org\. no\."))).not_to_have_count(0)
    shot(page, "14-tripletex-review-list")
    assert axe(page) == [], "review list"
    first = items.first
    first_id = first.get_attribute("data-review")
    first.get_by_role("button", name="Ignore").click()
    again = page.locator(f'li[data-review="{first_id}"]')
    expect(again.get_by_text("Ignored")).to_be_visible()
    again.get_by_role("button", name="Create").click()
    expect(main(page).get_by_text(re.compile(r": created$"))).to_be_visible()


def test_member_sees_no_admin_actions(world, page):
    ws = world.workspace()
    # Connected by the admin through the API.
    admin = ws["owner"]
    admin.ok("PUT", "/v1/connections/timelog", {
        "domain": world.timelog_domain, "account_name": "acme-tl",
        "username": "hourbridge.sync@acme.test", "password": "Sandbox-TimeLog-2026",
        "site_code": "7F3A9C21D8E64B0F", "reporting_username": "hourbridge-reporting",
        "reporting_password": "reporting-secret-7731",
    })
    open_ui(page, world, ws["tokens"]["eve"])
    expect(page.locator("li.card")).to_have_count(5)
    expect(card(page, "timelog").locator(".status-label")).to_have_text("Not synchronized yet")
    for action in ("connect", "edit", "disconnect", "sync", "people", "review"):
        expect(page.locator(f'[data-action="{action}"]')).to_have_count(0)
    shot(page, "15-member-view")
    page.get_by_role("button", name="Project settings").click()
    sec = page.locator('section.link[data-provider="timelog"]')
    expect(sec.get_by_label("Sync with TimeLog")).to_be_disabled()
    expect(sec.get_by_role("button", name="Save")).to_have_count(0)
    expect(sec.get_by_role("button", name="Reset and sync all work logs")).to_have_count(0)


def test_keyboard_only_and_accessibility(world, page):
    ws = world.workspace()
    open_ui(page, world, ws["tokens"]["ada"])
    assert axe(page) == [], "integrations list"
    # Tab to Harvest's Connect button and press Enter; tab to the fields and type; Space on Copy.
    target = page.get_by_role("button", name="Connect Harvest")
    for _ in range(40):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached Connect Harvest")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connect Harvest")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    assert axe(page) == [], "connect window"
    copy = page.get_by_role("button", name="Copy the redirect URL")
    for _ in range(20):
        page.keyboard.press("Tab")
        if copy.evaluate("el => el === document.activeElement"):
            break
    page.keyboard.press("Space")
    expect(main(page).get_by_text("Copied")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Client ID")).to_be_focused()
    page.keyboard.type("demo-harvest-client")
    page.keyboard.press("Tab")
    page.keyboard.type("demo-harvest-secret")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Save and authorize")).to_be_focused()
    with page.context.expect_page():
        page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Done")).to_be_focused(timeout=20000)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Integrations")
    # The disconnect confirmation is a modal dialog: Escape cancels it.
    harvest = card(page, "harvest")
    harvest.get_by_role("button", name="Disconnect").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    assert axe(page) == [], "disconnect dialog"
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    # The project settings screen.
    open_ui(page, world, ws["tokens"]["ada"], project=ws["project"])
    expect(page.locator('section.link[data-provider="harvest"]')).to_be_visible()
    assert axe(page) == [], "project settings"


def test_token_by_post_message_and_failing_api(world, page):
    ws = world.workspace()
    page.goto(world.base + "/connect")
    expect(main(page).get_by_text("Waiting for the product")).to_be_visible()
    page.evaluate("t => window.postMessage({type: 'hourbridge:token', token: t}, '*')", ws["tokens"]["ada"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Integrations")
    # A failing API: the error in plain words and a Retry button that works once it recovers.
    fail = {"on": True}

    def route(r):
        if fail["on"]:
            r.fulfill(status=503, headers={"Retry-After": "1", "content-type": "application/json"},
                      body='{"error":{"code":"unavailable","message":"down"}}')
        else:
            r.continue_()

    page.route("**/v1/connections", route)
    page.get_by_role("button", name="Integrations").click()
    expect(page.get_by_role("alert")).to_contain_text("briefly unavailable")
    shot(page, "16-api-unavailable-retry")
    fail["on"] = False
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("li.card")).to_have_count(5)


def test_embedded_in_an_iframe_with_the_token_by_post_message(world, page):
    ws = world.workspace()
    token, project = ws["tokens"]["bob"], ws["project"]
    # The host product on an origin of its own (served by the browser's router).
    host = f"""<!doctype html><html lang="en"><head><title>Host product</title></head>
<body><main><h1>Acme settings</h1>
<iframe id="hb" title="Integrations" src="{world.base}/connect" width="1000" height="700"></iframe>
</main><script>
  const seen = [];
  window.addEventListener("message", (ev) => {{
    seen.push(ev.data.type);
    document.body.dataset.seen = seen.join(",");
    if (ev.data.type === "hourbridge:ready")
      document.getElementById("hb").contentWindow.postMessage(
        {{type: "hourbridge:token", token: {json.dumps(token)}, project_id: {json.dumps(project)}}},
        {json.dumps(world.base)});
  }});
</script></body></html>"""
    import http.server
    import threading

    class Host(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(host.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/settings")
        embedded(page, project)
    finally:
        server.shutdown()


def embedded(page, project):
    frame = page.frame_locator("#hb")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Project integration settings")
    expect(frame.get_by_label("Project", exact=True)).to_have_value(project)
    expect(page.locator("body")).to_have_attribute("data-seen", re.compile("hourbridge:ready"))
    shot(page, "17-embedded-iframe")
