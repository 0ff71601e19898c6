// Hourbridge Integrations UI. Vanilla JS, no build step, no framework, no dependencies; every
// call goes through the public API with the caller's token. Text is always set as text (never
// as markup), so nothing from the API or a provider can inject script.
"use strict";

(function () {
  // ---------------------------------------------------------------- token and host messages
  var state = {
    token: null, claims: null, project: null, workspace: null, providers: [],
    connections: {}, view: null, cache: {},
  };
  var API = location.pathname.replace(/\/connect\/?$/, "");

  function readFragment() {
    if (!location.hash || location.hash.length < 2) return;
    var params = new URLSearchParams(location.hash.slice(1));
    var token = params.get("token");
    if (token) state.token = token;
    if (params.get("project")) state.project = params.get("project");
    // The token must not linger in the address bar, history or anything copied from it.
    history.replaceState(null, "", location.pathname + location.search);
  }

  function decodeClaims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      return JSON.parse(atob(part));
    } catch (e) {
      return {};
    }
  }

  function tellHost(message) {
    if (window.parent && window.parent !== window) window.parent.postMessage(message, "*");
    if (window.opener && window.opener !== window) {
      try { window.opener.postMessage(message, "*"); } catch (e) { /* cross-origin opener gone */ }
    }
  }

  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (!d || typeof d !== "object" || d.type !== "hourbridge:token" || typeof d.token !== "string") return;
    state.token = d.token;
    if (typeof d.project_id === "string" && d.project_id) state.project = d.project_id;
    start();
  });

  // ---------------------------------------------------------------- DOM helpers
  var uid = 0;
  function id(prefix) { uid += 1; return (prefix || "hb") + "-" + uid; }

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") el.textContent = v;
        else if (k === "on") Object.keys(v).forEach(function (e) { el.addEventListener(e, v[e]); });
        else if (k === "class") el.className = v;
        else if (k === "checked" || k === "value" || k === "disabled" || k === "hidden") el[k] = v;
        else el.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(el, c); }); return; }
    el.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function announce(text) {
    var a = document.getElementById("announce");
    a.textContent = "";
    setTimeout(function () { a.textContent = text; }, 30);
  }
  function main() { return document.getElementById("main"); }

  // ---------------------------------------------------------------- API
  function ApiError(status, body) {
    var e = (body && body.error) || {};
    this.status = status;
    this.code = e.code || (status ? "http_" + status : "network");
    this.message = e.message || (status ? "The server answered " + status + "." : "The server could not be reached.");
    this.fields = e.fields || [];
    this.retryAfter = null;
  }

  var PLAIN = {
    network: "The server could not be reached. Check the connection and try again.",
    unauthorized: "Your session has expired. Reload the page from the product to sign in again.",
    forbidden: "Your role may not do this.",
    busy: "Another synchronization of this integration is running. Try again in a moment.",
    unavailable: "The service is briefly unavailable. Try again in a moment.",
    provider_unavailable: "The provider is unavailable or busy right now. Try again in a moment.",
    unreachable: "The provider could not be reached. Try again later.",
    reauth_required: "The provider no longer accepts our credentials: authorize again.",
    test_required: "Run Test API successfully before confirming.",
    invalid_sync_at: "Choose a time on a quarter hour (for example 18:30).",
  };
  function plain(err) {
    if (PLAIN[err.code] && (err.code !== "forbidden" || !err.message)) return PLAIN[err.code];
    return err.message;
  }

  function api(method, path, body) {
    var opts = { method: method, headers: { Authorization: "Bearer " + state.token }, cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(API + path, opts).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var err = new ApiError(res.status, data);
          err.retryAfter = Number(res.headers.get("Retry-After")) || null;
          throw err;
        }
        return data;
      });
    }, function () { throw new ApiError(0, null); });
  }

  // GETs retry once by themselves after a short wait when the service is briefly unavailable.
  function get(path) {
    return api("GET", path).catch(function (err) {
      if (err.status === 0 || err.status === 503 || err.status === 502) {
        var wait = Math.min((err.retryAfter || 1) * 1000, 5000);
        return new Promise(function (r) { setTimeout(r, wait); }).then(function () { return api("GET", path); });
      }
      throw err;
    });
  }

  function getAll(path) {
    var items = [];
    function page(cursor) {
      var sep = path.indexOf("?") >= 0 ? "&" : "?";
      return get(path + (cursor ? sep + "cursor=" + encodeURIComponent(cursor) : "")).then(function (p) {
        items = items.concat(p.items || []);
        if (p.next_cursor && items.length < 5000) return page(p.next_cursor);
        return items;
      });
    }
    return page(null);
  }

  // ---------------------------------------------------------------- formats (locale-neutral)
  function fmtTime(iso) {
    if (!iso) return "—";
    var tz = (state.workspace && state.workspace.time_zone) || "UTC";
    try {
      var parts = {};
      new Intl.DateTimeFormat("en-GB", {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      }).formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
      return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
    } catch (e) {
      return iso.slice(0, 16).replace("T", " ") + " UTC";
    }
  }
  function todayInZone(offsetDays) {
    var d = new Date(Date.now() + (offsetDays || 0) * 86400000);
    return fmtTime(d.toISOString()).slice(0, 10);
  }

  var ROLE_ORDER = { member: 1, manager: 2, admin: 3, owner: 4 };
  function roleAtLeast(role) { return (ROLE_ORDER[state.claims.role] || 0) >= ROLE_ORDER[role]; }

  var STATE_TEXT = {
    pending_authorization: ["Waiting for authorization", "warn"],
    pending_activation: ["Waiting for activation", "warn"],
    pending_test: ["Waiting for Test API", "warn"],
    tested: ["Tested: waiting for confirmation", "warn"],
    pending_account_choice: ["Choose an account", "warn"],
    active: ["Connected", "ok"],
    reauth_required: ["Authorize again", "err"],
  };

  var HELP = {
    timelog: {
      domain: "The host of your TimeLog site, e.g. app5.timelog.com (no https://). If the browser shows app.timelog.com, the specific host is under System Administration → Integrations and API → Transactional API settings.",
      account_name: "The path segment after the host: in https://app5.timelog.com/nordlys/ it is nordlys.",
      username: "A TimeLog user (user name or initials) for the Transactional API; a system administrator is best.",
      password: "That user's password.",
      site_code: "System Administration → Integrations and API → Reporting API settings: Site code.",
      reporting_username: "Same page: API ID.",
      reporting_password: "Same page: API password.",
    },
    tripletex: {
      employee_token: "Created in Tripletex by one of your administrators: Settings → Integrations → API access → New employee token.",
    },
  };

  function capsLine(p) {
    var c = [];
    if (p.work_logs_in) c.push("work logs in");
    if (p.master_data_in) c.push("projects and tasks in");
    if (p.tasks_out) c.push("tasks out");
    if (p.time_two_way) c.push("time both ways");
    else if (p.time_out) c.push("time out");
    var s = c.join(", ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function counts(cs, title) {
    if (!cs) return null;
    var dl = h("dl", { class: "counts", "aria-label": title || "Counts" });
    ["created", "updated", "deleted", "unchanged", "skipped"].forEach(function (k) {
      dl.appendChild(h("div", null, h("dt", { text: k }), h("dd", { text: String(cs[k] || 0) })));
    });
    return dl;
  }

  function countsText(cs) {
    return ["created", "updated", "deleted", "unchanged", "skipped"].map(function (k) { return (cs[k] || 0) + " " + k; }).join(" · ");
  }

  // ---------------------------------------------------------------- UI building blocks
  function errorBox() { return h("p", { class: "error", role: "alert", hidden: true }); }
  function showError(box, err) {
    box.textContent = typeof err === "string" ? err : plain(err);
    box.hidden = false;
  }

  // A button whose action shows a spinner, disables the button and reports errors in `box`.
  function action(label, fn, opts) {
    opts = opts || {};
    var box = opts.box || errorBox();
    var b = h("button", { type: "button", class: opts.class || null, "data-action": opts.name || null, text: label });
    b.addEventListener("click", function () {
      if (b.disabled) return;
      box.hidden = true;
      b.disabled = true;
      b.setAttribute("aria-busy", "true");
      b.classList.add("spinner");
      Promise.resolve().then(fn).catch(function (err) {
        showError(box, err);
      }).then(function () {
        b.disabled = false;
        b.removeAttribute("aria-busy");
        b.classList.remove("spinner");
      });
    });
    b.errorBox = box;
    return b;
  }

  // Loads with a spinner; on failure shows the error in plain words with a Retry button.
  function loading(container, load, render) {
    clear(container);
    container.appendChild(h("p", { class: "spinner", role: "status", text: "Loading…" }));
    load().then(function (data) {
      clear(container);
      render(data);
    }, function (err) {
      clear(container);
      var box = errorBox();
      showError(box, err);
      container.appendChild(box);
      container.appendChild(h("button", { type: "button", text: "Retry", on: { click: function () { loading(container, load, render); } } }));
    });
  }

  function confirmDialog(title, text, confirmLabel) {
    return new Promise(function (resolve) {
      var titleId = id("dlg");
      var d = h("dialog", { "aria-labelledby": titleId },
        h("h2", { id: titleId, text: title }),
        text.map(function (t) { return h("p", { text: t }); }));
      var yes = h("button", { type: "button", class: "danger primary", text: confirmLabel });
      var no = h("button", { type: "button", text: "Cancel" });
      d.appendChild(h("div", { class: "actions" }, yes, no));
      function done(v) { d.close(); d.remove(); resolve(v); }
      yes.addEventListener("click", function () { done(true); });
      no.addEventListener("click", function () { done(false); });
      d.addEventListener("cancel", function (e) { e.preventDefault(); done(false); });
      document.body.appendChild(d);
      d.showModal();
      no.focus();
    });
  }

  function field(f, provider, value) {
    var inputId = id("f");
    var helpText = (HELP[provider.id] || {})[f.name];
    var helpId = helpText ? id("help") : null;
    var errId = id("err");
    var input;
    if (f.name === "sync_at") {
      input = h("select", { id: inputId, name: f.name, "aria-describedby": [helpId, errId].filter(Boolean).join(" ") });
      for (var m = 0; m < 24 * 60; m += 15) {
        var t = ("0" + Math.floor(m / 60)).slice(-2) + ":" + ("0" + (m % 60)).slice(-2);
        input.appendChild(h("option", { value: t, text: t }));
      }
      input.value = value || "18:00";
      helpText = "Every day at this time in the workspace's time zone (" + state.workspace.time_zone + ").";
      helpId = id("help");
      input.setAttribute("aria-describedby", helpId + " " + errId);
    } else {
      input = h("input", {
        id: inputId, name: f.name, type: f.secret ? "password" : "text", value: value || "",
        autocomplete: f.secret ? "new-password" : "off", spellcheck: "false",
        required: f.required || null, "aria-required": f.required ? "true" : null,
        "aria-describedby": [helpId, errId].filter(Boolean).join(" "),
      });
    }
    var label = f.name === "sync_at" ? "Synchronize at" : f.label;
    var err = h("p", { id: errId, class: "field-error", hidden: true });
    var wrap = h("div", { class: "field", "data-field": f.name },
      h("label", { for: inputId, text: label + (f.required && f.name !== "sync_at" ? " (required)" : "") }),
      helpText ? h("p", { id: helpId, class: "help", text: helpText }) : null,
      input, err);
    wrap.input = input;
    wrap.err = err;
    return wrap;
  }

  // Shows an API error next to the fields it names (or in `box` when it names none).
  function fieldErrors(wraps, box, err) {
    wraps.forEach(function (w) { w.err.hidden = true; w.input.removeAttribute("aria-invalid"); });
    var named = wraps.filter(function (w) { return err.fields && err.fields.indexOf(w.input.name) >= 0; });
    if (!named.length) { showError(box, err); return; }
    named.forEach(function (w) {
      w.err.textContent = plain(err);
      w.err.hidden = false;
      w.input.setAttribute("aria-invalid", "true");
    });
    named[0].input.focus();
    showError(box, "Check the marked fields: " + plain(err));
  }

  function values(wraps) {
    var body = {};
    wraps.forEach(function (w) { if (w.input.value !== "") body[w.input.name] = w.input.value.trim(); });
    return body;
  }

  function screen(title, backTo) {
    var m = clear(main());
    if (backTo) {
      m.appendChild(h("p", null, h("button", { type: "button", class: "back", text: "← Back to integrations", on: { click: function () { go("list"); } } })));
    }
    var h1 = h("h1", { tabindex: "-1", text: title });
    m.appendChild(h1);
    document.title = title + " · Integrations";
    h1.focus();
    return m;
  }

  function providerById(pid) {
    return state.providers.filter(function (p) { return p.id === pid; })[0];
  }

  function refreshConnections() {
    return get("/v1/connections").then(function (l) {
      state.connections = {};
      (l.items || []).forEach(function (c) { state.connections[c.provider] = c; });
      return state.connections;
    });
  }

  // ---------------------------------------------------------------- navigation
  function go(view, arg) {
    state.view = view;
    renderNav();
    if (view === "list") return listScreen();
    if (view === "connect") return connectScreen(providerById(arg));
    if (view === "project") return projectScreen(arg);
    if (view === "review") return reviewScreen(providerById(arg));
    if (view === "people") return peopleScreen(providerById(arg));
  }

  function renderNav() {
    var nav = document.getElementById("nav");
    clear(nav);
    nav.hidden = false;
    [["list", "Integrations"], ["project", "Project settings"]].forEach(function (v) {
      nav.appendChild(h("button", {
        type: "button", text: v[1], "aria-current": state.view === v[0] ? "page" : null,
        on: { click: function () { go(v[0], v[0] === "project" ? state.project : undefined); } },
      }));
    });
  }

  // ---------------------------------------------------------------- integrations list
  function listScreen() {
    var m = screen("Integrations");
    m.appendChild(h("p", { class: "muted", text: "Workspace " + state.workspace.name + " · times in " + state.workspace.time_zone + " · you are " + (state.claims.role || "?") }));
    var body = h("div");
    m.appendChild(body);
    loading(body, refreshConnections, function () {
      var ul = h("ul", { class: "grid", "aria-label": "Providers" });
      state.providers.forEach(function (p) { ul.appendChild(card(p)); });
      body.appendChild(ul);
    });
  }

  function needsAddOn(p) {
    return p.requires_add_on && (state.workspace.add_ons || []).indexOf(p.id) < 0;
  }

  function card(p) {
    var c = state.connections[p.id];
    var titleId = id("p");
    var li = h("li", { class: "card", "data-provider": p.id, "aria-labelledby": titleId });
    li.appendChild(h("h2", { id: titleId, text: p.display_name }));
    li.appendChild(h("p", { class: "muted", text: capsLine(p) }));
    var box = errorBox();
    if (!c) {
      li.appendChild(h("p", null, h("span", { class: "badge off", text: "Not connected" })));
    } else {
      var st = STATE_TEXT[c.state] || [c.state, "warn"];
      li.appendChild(h("p", null, h("span", { class: "badge " + st[1], text: st[0] })));
      li.appendChild(h("p", { class: "label status-label", text: c.status.label }));
      if (c.status.kind === "failed" && c.status.message) li.appendChild(h("p", { class: "error", text: c.status.message }));
      if (c.account && c.account.name) li.appendChild(h("p", { text: "Account: " + c.account.name }));
      if (c.status.counts && (p.work_logs_in || p.time_out) && c.status.kind !== "never_synced") {
        li.appendChild(h("p", { class: "counts-line", text: "Work logs: " + countsText(c.status.counts) }));
      }
      if (c.status.imported && p.master_data_in && c.status.kind !== "never_synced") {
        li.appendChild(h("p", { class: "counts-line", text: "Imported: " + countsText(c.status.imported) }));
      }
      li.appendChild(h("p", { text: "Next run: " + (c.next_run_at ? fmtTime(c.next_run_at) : "not scheduled") }));
    }
    if (needsAddOn(p)) {
      li.appendChild(h("p", { class: "muted", text: "Needs the " + p.display_name + " add-on: enable it in the product's billing settings." }));
    }
    var acts = h("div", { class: "actions" });
    if (p.can_install && !needsAddOn(p)) {
      if (!c) {
        acts.appendChild(h("button", { type: "button", class: "primary", "data-action": "connect", text: "Connect", "aria-label": "Connect " + p.display_name, on: { click: function () { go("connect", p.id); } } }));
      } else {
        acts.appendChild(h("button", { type: "button", "data-action": "edit", text: c.state === "active" ? "Edit" : "Continue", "aria-label": (c.state === "active" ? "Edit " : "Continue connecting ") + p.display_name, on: { click: function () { go("connect", p.id); } } }));
        if (c.state === "active") {
          acts.appendChild(action(p.review_list && c.status.kind === "never_synced" ? "Start synchronization" : "Synchronize now", function () {
            return api("POST", "/v1/connections/" + p.id + "/sync").then(function (r) {
              announce(p.display_name + ": synchronization started");
              var prog = h("div");
              li.appendChild(prog);
              return follow(prog, r.run_id, null).then(function () {
                return refreshConnections();
              }).then(function () {
                var fresh = card(p);
                li.replaceWith(fresh);
                var again = fresh.querySelector('[data-action="sync"]');
                if (again) again.focus();
              });
            });
          }, { box: box, name: "sync" }));
          if (p.review_list) acts.appendChild(h("button", { type: "button", "data-action": "review", text: "Review list", on: { click: function () { go("review", p.id); } } }));
        }
        acts.appendChild(action("Disconnect", function () { return disconnect(p); }, { box: box, class: "danger", name: "disconnect" }));
      }
    }
    if (c && c.state === "active" && p.person_links && roleAtLeast("admin")) {
      acts.appendChild(h("button", { type: "button", "data-action": "people", text: "Person links", on: { click: function () { go("people", p.id); } } }));
    }
    if (acts.childNodes.length) li.appendChild(acts);
    li.appendChild(box);
    return li;
  }

  function whatStays(p) {
    var t = ["Disconnecting deletes the stored credentials and the schedule" + (p.project_links ? ", and the project links" : "") + (p.webhooks ? ", and removes our webhooks in " + p.display_name : "") + "."];
    if (p.work_logs_in || p.time_two_way) t.push("Work logs already synced stay in the workspace.");
    if (p.master_data_in) t.push("Imported customers, projects and tasks stay and become editable here.");
    if (p.time_out || p.tasks_out) t.push("What was sent to " + p.display_name + " stays there.");
    return t;
  }

  function disconnect(p) {
    return confirmDialog("Disconnect " + p.display_name + "?", whatStays(p), "Disconnect").then(function (yes) {
      if (!yes) return;
      return api("DELETE", "/v1/connections/" + p.id).then(function () {
        announce(p.display_name + " disconnected");
        tellHost({ type: "hourbridge:disconnected", provider: p.id });
        go("list");
      });
    });
  }

  // ---------------------------------------------------------------- connect windows
  function connectScreen(p) {
    var m = screen((state.connections[p.id] ? "Edit " : "Connect ") + p.display_name, true);
    var body = h("div", { class: "connect", "data-auth": p.auth_kind });
    m.appendChild(body);
    loading(body, function () {
      return api("GET", "/v1/connections/" + p.id).catch(function (e) { if (e.status === 404) return null; throw e; });
    }, function (c) {
      if (c) state.connections[p.id] = c;
      if (p.auth_kind === "oauth_customer_app" || p.auth_kind === "oauth_platform") oauthWindow(body, p, c);
      else if (p.auth_kind === "credential_set") credentialWindow(body, p, c);
      else if (p.auth_kind === "session_token") tokenWindow(body, p, c);
    });
  }

  function stateLine(c) {
    if (!c) return h("p", { class: "muted", text: "Not connected yet." });
    var st = STATE_TEXT[c.state] || [c.state, "warn"];
    return h("p", null, "State: ", h("span", { class: "badge " + st[1], "data-state": c.state, text: st[0] }), " · ", h("span", { class: "status-label", text: c.status.label }));
  }

  function doneLine(body, p, text) {
    announce(text);
    tellHost({ type: "hourbridge:connected", provider: p.id });
    body.appendChild(h("p", { class: "notice", role: "status", text: text }));
    var back = h("button", { type: "button", class: "primary", text: "Done", on: { click: function () { go("list"); } } });
    body.appendChild(h("div", { class: "actions" }, back));
    back.focus();
  }

  function oauthWindow(body, p, c) {
    body.appendChild(stateLine(c));
    var wraps = [];
    var form = h("div");
    if (p.auth_kind === "oauth_customer_app") {
      body.appendChild(h("h2", { text: "1. Register an OAuth app in " + p.display_name }));
      body.appendChild(h("p", { text: "Create an OAuth application in " + p.display_name + " (any name, e.g. \"Hourbridge\") and paste this redirect URL into it:" }));
      var urlId = id("url");
      var url = h("input", { id: urlId, type: "text", readonly: true, value: p.redirect_url, "aria-label": "Redirect URL" });
      var copied = h("span", { role: "status", class: "notice" });
      var copy = h("button", { type: "button", text: "Copy", "aria-label": "Copy the redirect URL", on: { click: function () {
        var ok = function () { copied.textContent = "Copied"; };
        var fallback = function () { url.select(); document.execCommand("copy"); copy.focus(); ok(); };
        if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(p.redirect_url).then(ok, fallback);
        else fallback();
      } } });
      body.appendChild(h("div", { class: "copy" }, url, copy));
      body.appendChild(copied);
      body.appendChild(h("h2", { text: "2. Paste the app's credentials" }));
    } else {
      body.appendChild(h("p", { text: "Hourbridge's own " + p.display_name + " app is used: sign in to " + p.display_name + " and allow access." }));
    }
    p.fields.forEach(function (f) {
      var w = field(f, p, c && c.fields ? c.fields[f.name] : "");
      wraps.push(w);
      form.appendChild(w);
    });
    if (c && p.fields.some(function (f) { return f.secret; })) form.appendChild(h("p", { class: "help", text: "Secret fields are never shown again; enter them anew to change the connection." }));
    body.appendChild(form);
    var box = errorBox();
    var after = h("div");
    var saveLabel = p.auth_kind === "oauth_platform" ? (c && c.state === "active" ? "Save" : "Connect") : "Save and authorize";
    var acts = h("div", { class: "actions" });
    acts.appendChild(action(saveLabel, function () {
      var popup = null;
      var willAuthorize = !(c && c.state === "active" && p.auth_kind === "oauth_platform");
      if (willAuthorize) popup = window.open("", "hourbridge-oauth", "popup,width=620,height=720");
      return api("PUT", "/v1/connections/" + p.id, values(wraps)).then(function (conn) {
        state.connections[p.id] = conn;
        if (!willAuthorize) { doneLine(after, p, p.display_name + " settings saved. Next run: " + fmtTime(conn.next_run_at)); return; }
        return authorize(p, popup, after);
      }).catch(function (err) {
        if (popup) popup.close();
        fieldErrors(wraps, box, err);
      });
    }, { box: box, class: "primary", name: "save" }));
    if (c && (c.state === "pending_authorization" || c.state === "reauth_required")) {
      acts.appendChild(action("Authorize", function () {
        var popup = window.open("", "hourbridge-oauth", "popup,width=620,height=720");
        return authorize(p, popup, after);
      }, { box: box, name: "authorize" }));
    }
    body.appendChild(acts);
    body.appendChild(box);
    body.appendChild(after);
    if (c && c.state === "pending_account_choice") accountChoice(after, p, c);
  }

  // Sends the popup to the provider's consent page and waits until the callback has stored
  // the tokens (the connection leaves `pending_authorization`).
  function authorize(p, popup, after) {
    clear(after);
    return api("POST", "/v1/connections/" + p.id + "/authorize").then(function (a) {
      if (popup && !popup.closed) popup.location.href = a.authorize_url;
      else popup = window.open(a.authorize_url, "hourbridge-oauth", "popup,width=620,height=720");
      var wait = h("p", { class: "spinner", role: "status", text: "Waiting for you to allow access in the " + p.display_name + " window…" });
      after.appendChild(wait);
      if (!popup) {
        // The browser blocked the popup: let the person open the consent page themselves.
        after.appendChild(h("p", null, h("a", { href: a.authorize_url, target: "_blank", rel: "noopener noreferrer", text: "Open " + p.display_name + " to allow access" })));
      }
      var started = Date.now();
      return new Promise(function (resolve, reject) {
        (function poll() {
          api("GET", "/v1/connections/" + p.id).then(function (c) {
            if (c.state !== "pending_authorization" && c.state !== "reauth_required") {
              if (popup && !popup.closed) popup.close();
              clear(after);
              state.connections[p.id] = c;
              if (c.state === "pending_account_choice") accountChoice(after, p, c);
              else doneLine(after, p, p.display_name + " is connected" + (c.account && c.account.name ? " to " + c.account.name : "") + ".");
              resolve();
            } else if ((popup && popup.closed && Date.now() - started > 1500) || Date.now() - started > 600000) {
              clear(after);
              reject(new ApiError(400, { error: { code: "authorization_unfinished", message: "Authorization was not finished. Press Authorize to try again." } }));
            } else setTimeout(poll, 700);
          }, function (err) {
            if (err.status === 0 || err.status >= 500) setTimeout(poll, 1500);
            else { wait.remove(); reject(err); }
          });
        })();
      });
    });
  }

  function accountChoice(after, p, c) {
    var fs = h("fieldset", { class: "accounts" }, h("legend", { text: "Choose the " + p.display_name + " account to sync" }));
    var name = id("acct");
    (c.accounts || []).forEach(function (a, i) {
      var aid = String(a.id);
      var rid = id("a");
      fs.appendChild(h("label", { class: "inline", for: rid }, h("input", { type: "radio", id: rid, name: name, value: aid, checked: i === 0 }), (a.name || aid) + " (" + aid + ")"));
    });
    var box = errorBox();
    fs.appendChild(h("div", { class: "actions" }, action("Use this account", function () {
      var sel = fs.querySelector("input[type=radio]:checked");
      return api("POST", "/v1/connections/" + p.id + "/account", { account_id: sel.value }).then(function (conn) {
        state.connections[p.id] = conn;
        fs.remove();
        doneLine(after, p, p.display_name + " is connected to " + ((conn.account && conn.account.name) || sel.value) + ".");
      });
    }, { box: box, class: "primary", name: "account" })));
    fs.appendChild(box);
    after.appendChild(fs);
  }

  function credentialWindow(body, p, c) {
    body.appendChild(stateLine(c));
    body.appendChild(h("p", { text: "Enter the " + p.fields.length + " fields from " + p.display_name + ". Activate checks them with " + p.display_name + " before anything is stored." }));
    var wraps = p.fields.map(function (f) { return field(f, p, c && c.fields ? c.fields[f.name] : ""); });
    var form = h("div", null, wraps);
    body.appendChild(form);
    var box = errorBox();
    var after = h("div");
    body.appendChild(h("div", { class: "actions" }, action("Activate", function () {
      return api("PUT", "/v1/connections/" + p.id, values(wraps)).then(function (conn) {
        state.connections[p.id] = conn;
        wraps.forEach(function (w) { w.err.hidden = true; w.input.removeAttribute("aria-invalid"); });
        clear(after);
        doneLine(after, p, p.display_name + " is activated.");
      }, function (err) { fieldErrors(wraps, box, err); });
    }, { box: box, class: "primary", name: "activate" })));
    body.appendChild(box);
    body.appendChild(after);
  }

  function tokenWindow(body, p, c) {
    var line = h("div", null, stateLine(c));
    body.appendChild(line);
    var wraps = p.fields.map(function (f) { return field(f, p, ""); });
    body.appendChild(h("div", null, wraps));
    var box = errorBox();
    var steps = h("div");
    body.appendChild(h("div", { class: "actions" }, action("Save", function () {
      return api("PUT", "/v1/connections/" + p.id, values(wraps)).then(function (conn) {
        state.connections[p.id] = conn;
        clear(line).appendChild(stateLine(conn));
        announce("Token saved. Run Test API next.");
        renderSteps(conn);
      }, function (err) { fieldErrors(wraps, box, err); });
    }, { box: box, class: "primary", name: "save" })));
    body.appendChild(box);
    body.appendChild(steps);

    function renderSteps(conn) {
      clear(steps);
      if (!conn) return;
      var sbox = errorBox();
      var result = h("div");
      if (conn.state === "pending_test" || conn.state === "tested") {
        steps.appendChild(h("h2", { text: "Test API" }));
        steps.appendChild(h("div", { class: "actions" }, action("Test API", function () {
          return api("POST", "/v1/connections/" + p.id + "/test").then(function (t) {
            clear(result);
            result.appendChild(h("p", { class: "notice", role: "status", "data-company": t.company && t.company.name, text: "The token works for " + ((t.company && t.company.name) || "?") + (t.employee && t.employee.name ? " as " + t.employee.name : "") + "." }));
            var cid = id("ok");
            var tick = h("input", { type: "checkbox", id: cid });
            var cbox = errorBox();
            result.appendChild(h("label", { class: "inline", for: cid }, tick, "Yes, synchronize this company (" + ((t.company && t.company.name) || "?") + ")"));
            result.appendChild(h("div", { class: "actions" }, action("Confirm", function () {
              if (!tick.checked) { showError(cbox, "Tick the box to confirm the company first."); tick.focus(); return; }
              return api("POST", "/v1/connections/" + p.id + "/confirm").then(function (cc) {
                state.connections[p.id] = cc;
                clear(line).appendChild(stateLine(cc));
                renderSteps(cc);
              });
            }, { box: cbox, class: "primary", name: "confirm" })));
            result.appendChild(cbox);
          }, function (err) { fieldErrors(wraps, sbox, err); });
        }, { box: sbox, name: "test" })));
        steps.appendChild(sbox);
        steps.appendChild(result);
      } else if (conn.state === "active") {
        steps.appendChild(h("h2", { text: "Start synchronization" }));
        steps.appendChild(h("p", { text: "The first synchronization links, imports and lists for review the customers and projects of " + p.display_name + "." }));
        var prog = h("div");
        steps.appendChild(h("div", { class: "actions" }, action("Start synchronization", function () {
          return api("POST", "/v1/connections/" + p.id + "/sync").then(function (r) {
            return follow(prog, r.run_id, null).then(function (run) {
              if (p.review_list) prog.appendChild(h("div", { class: "actions" }, h("button", { type: "button", text: "Open the review list", "data-action": "review", on: { click: function () { go("review", p.id); } } })));
              if (run.state === "succeeded") tellHost({ type: "hourbridge:connected", provider: p.id });
            });
          });
        }, { box: sbox, class: "primary", name: "start" })));
        steps.appendChild(sbox);
        steps.appendChild(prog);
      }
    }
    renderSteps(c);
  }

  // ---------------------------------------------------------------- runs with live progress
  // Polls the run until it ends, showing a progress bar (against `expected`, e.g. a preview's
  // total, when known; otherwise indeterminate) and the counts so far.
  function follow(container, runId, expected) {
    clear(container);
    var labelId = id("prog");
    var title = h("p", { id: labelId, class: "label", text: "Synchronization in progress" });
    var bar = h("progress", { "aria-labelledby": labelId, max: "100" });
    bar.removeAttribute("value");
    var detail = h("p", { class: "muted", role: "status", "aria-live": "polite" });
    var cs = h("div");
    container.appendChild(h("div", { class: "run", "data-run": runId }, title, bar, detail, cs));
    return new Promise(function (resolve, reject) {
      var misses = 0;
      (function poll() {
        api("GET", "/v1/runs/" + encodeURIComponent(runId)).then(function (run) {
          misses = 0;
          var all = run.counts, imp = run.imported;
          var done = ["created", "updated", "deleted", "unchanged", "skipped"].reduce(function (n, k) { return n + (all[k] || 0) + ((imp && imp[k]) || 0); }, 0);
          clear(cs);
          cs.appendChild(counts(run.counts, "Work logs"));
          if (imp && ["created", "updated", "deleted", "unchanged", "skipped"].some(function (k) { return imp[k]; })) {
            cs.appendChild(h("p", { class: "muted", text: "Imported:" }));
            cs.appendChild(counts(imp, "Imported"));
          }
          if (run.state === "queued" || run.state === "running") {
            container.querySelector(".run").setAttribute("data-state", run.state);
            container.querySelector(".run").setAttribute("data-was-running", "true");
            if (expected) bar.value = Math.min(99, Math.round((done / expected) * 100));
            detail.textContent = (run.state === "queued" ? "Queued… " : "Running… ") + done + " records processed";
            setTimeout(poll, 400);
            return;
          }
          container.querySelector(".run").setAttribute("data-state", run.state);
          bar.value = 100;
          if (run.state === "succeeded") {
            title.textContent = "Synchronized successfully at " + fmtTime(run.finished_at);
            detail.textContent = done + " records processed" + (run.problems && run.problems.length ? "; " + run.problems.length + " problems" : "");
          } else {
            title.textContent = "There was an error at " + fmtTime(run.finished_at);
            detail.textContent = run.failure_message || run.failure || "The run failed.";
            detail.className = "error";
          }
          announce(title.textContent);
          if (run.problems && run.problems.length) {
            var det = h("details", null, h("summary", { text: "Problems (" + run.problems.length + ")" }));
            var ul = h("ul");
            run.problems.slice(0, 200).forEach(function (pr) { ul.appendChild(h("li", { text: pr.message + " (" + pr.code + ")" })); });
            det.appendChild(ul);
            cs.appendChild(det);
          }
          resolve(run);
        }, function (err) {
          misses += 1;
          if ((err.status === 0 || err.status >= 500) && misses < 20) {
            detail.textContent = "The server is slow to answer; still trying…";
            setTimeout(poll, 1500);
          } else reject(err);
        });
      })();
    });
  }

  // ---------------------------------------------------------------- project integration settings
  function projectScreen(projectId) {
    var m = screen("Project integration settings");
    var body = h("div");
    m.appendChild(body);
    loading(body, function () {
      return Promise.all([getAll("/v1/projects?limit=1000"), refreshConnections()]);
    }, function (r) {
      var projects = r[0];
      if (!projects.length) { body.appendChild(h("p", { text: "The workspace has no projects yet." })); return; }
      var selId = id("proj");
      var sel = h("select", { id: selId });
      projects.forEach(function (p) { sel.appendChild(h("option", { value: p.id, text: p.name })); });
      if (projectId && projects.some(function (p) { return p.id === projectId; })) sel.value = projectId;
      else if (projectId) body.appendChild(h("p", { class: "error", role: "alert", text: "The project " + projectId + " was not found in this workspace." }));
      var panel = h("div");
      sel.addEventListener("change", function () { state.project = sel.value; projectPanel(panel, projects.filter(function (p) { return p.id === sel.value; })[0]); });
      body.appendChild(h("label", { for: selId, text: "Project" }));
      body.appendChild(sel);
      body.appendChild(panel);
      state.project = sel.value;
      projectPanel(panel, projects.filter(function (p) { return p.id === sel.value; })[0]);
    });
  }

  function projectPanel(panel, project) {
    clear(panel);
    var linkable = state.providers.filter(function (p) { return p.project_links; });
    var any = false;
    linkable.forEach(function (p) {
      var c = state.connections[p.id];
      if (!c || c.state !== "active") return;
      any = true;
      var sec = h("section", { class: "card link", "data-provider": p.id, "aria-label": p.display_name + " settings of " + project.name });
      panel.appendChild(sec);
      loading(sec, function () {
        return api("GET", "/v1/projects/" + encodeURIComponent(project.id) + "/integrations/" + p.id).catch(function (e) { if (e.status === 404) return null; throw e; });
      }, function (link) { linkForm(sec, p, project, link); });
    });
    if (!any) panel.appendChild(h("p", { class: "muted", text: "No connected integration links projects yet. Connect Harvest, Hubstaff or TimeLog under Integrations first." }));
  }

  function linkForm(sec, p, project, link) {
    var manager = roleAtLeast("manager");
    var base = "/v1/projects/" + encodeURIComponent(project.id) + "/integrations/" + p.id;
    var tickId = id("tick");
    var tick = h("input", { type: "checkbox", id: tickId, checked: !!link, disabled: !manager || !!link });
    sec.appendChild(h("h2", null, h("label", { class: "inline", for: tickId }, tick, "Sync with " + p.display_name)));
    var form = h("div", { hidden: !link });
    sec.appendChild(form);
    if (link) {
      form.appendChild(h("p", { class: "label status-label", text: link.status.label }));
      if (link.status.counts && link.status.kind !== "never_synced") form.appendChild(counts(link.status.counts, "Last run"));
    }
    if (!manager) form.appendChild(h("p", { class: "muted", text: "Only managers and above change these settings." }));
    tick.addEventListener("change", function () { form.hidden = !tick.checked; });

    // Searchable multi-select of the provider's projects.
    var selected = {};
    (link ? link.remote_project_ids : []).forEach(function (rid) { selected[rid] = rid; });
    var max = p.project_links.max_remote_projects;
    var searchId = id("q");
    var search = h("input", { type: "search", id: searchId, placeholder: "Type to search", disabled: !manager });
    var chips = h("ul", { class: "chips", "aria-label": "Selected " + p.display_name + " projects" });
    var picker = h("div", { class: "picker", role: "group", "aria-label": p.display_name + " projects" });
    var pickBox = errorBox();
    form.appendChild(h("h3", { text: max === 1 ? "Select the project" : "Select projects (1 to " + max + ")" }));
    form.appendChild(h("label", { for: searchId, text: "Search " + p.display_name + " projects" }));
    form.appendChild(search);
    form.appendChild(chips);
    form.appendChild(picker);
    form.appendChild(pickBox);
    function renderChips() {
      clear(chips);
      Object.keys(selected).forEach(function (k) { chips.appendChild(h("li", { text: selected[k] })); });
      if (!Object.keys(selected).length) chips.appendChild(h("li", { text: "none selected" }));
    }
    var timer = null, seq = 0;
    function load() {
      var mine = ++seq;
      clear(picker).appendChild(h("p", { class: "spinner", text: "Loading projects…" }));
      pickBox.hidden = true;
      get("/v1/connections/" + p.id + "/remote-projects" + (search.value.trim() ? "?q=" + encodeURIComponent(search.value.trim()) : "")).then(function (page) {
        if (mine !== seq) return;
        clear(picker);
        if (!page.items.length) picker.appendChild(h("p", { class: "muted", text: "No project matches." }));
        page.items.forEach(function (rp) {
          var cid = id("rp");
          var label = rp.name + (rp.customer_name ? " (" + rp.customer_name + ")" : "") + (rp.archived ? " — archived" : "");
          if (selected[rp.id] !== undefined) selected[rp.id] = label;
          var box = h("input", { type: max === 1 ? "radio" : "checkbox", name: "rp-" + p.id, id: cid, value: rp.id, checked: selected[rp.id] !== undefined, disabled: !manager });
          box.addEventListener("change", function () {
            if (max === 1) selected = {};
            if (box.checked) selected[rp.id] = label; else delete selected[rp.id];
            renderChips();
          });
          picker.appendChild(h("label", { class: "inline", for: cid }, box, label));
        });
        renderChips();
      }, function (err) {
        if (mine !== seq) return;
        clear(picker);
        showError(pickBox, err);
        picker.appendChild(h("button", { type: "button", text: "Retry", on: { click: load } }));
      });
    }
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 250); });
    renderChips();
    // Searching the provider's projects is a manager's; others see the linked ids.
    if (manager) load();
    else { search.hidden = true; picker.hidden = true; form.querySelector('label[for="' + searchId + '"]').hidden = true; }

    // Options.
    var fromId = id("from");
    var fromHelp = id("help");
    // A text field in the API's own format (YYYY-MM-DD), the same whatever the browser's locale.
    var from = h("input", { type: "text", id: fromId, inputmode: "numeric", pattern: "\\d{4}-\\d{2}-\\d{2}", placeholder: "YYYY-MM-DD", "aria-describedby": fromHelp, value: (link && link.sync_from) || todayInZone(-90), disabled: !manager });
    if (p.project_links.requires_sync_from) {
      form.appendChild(h("label", { for: fromId, text: "Sync from" }));
      form.appendChild(h("p", { id: fromHelp, class: "help", text: "Work logs from this day on are synced (YYYY-MM-DD)." }));
      form.appendChild(from);
    }
    function option(label, help, checked) {
      var oid = id("opt"), hid = id("help");
      var box = h("input", { type: "checkbox", id: oid, checked: checked, disabled: !manager, "aria-describedby": hid });
      form.appendChild(h("label", { class: "inline", for: oid }, box, label));
      form.appendChild(h("p", { id: hid, class: "help", text: help }));
      return box;
    }
    var prevent = null, trim = null;
    if (p.work_logs_in) {
      prevent = option("Prevent new assignment creation", "Only people already assigned to this project get their work logs synced; others are reported, not assigned.", !!(link && link.prevent_new_assignments));
      trim = option("Trim assignments to work logs", "A new assignment spans the person's first to last synced work log, instead of the project's start to end.", !!(link && link.trim_assignments));
    }
    var box = errorBox();
    var out = h("div", { class: "result" });
    var preview = null;
    if (manager) {
      var acts = h("div", { class: "actions" });
      acts.appendChild(action("Save", function () {
        var body = { remote_project_ids: Object.keys(selected), prevent_new_assignments: !!(prevent && prevent.checked), trim_assignments: !!(trim && trim.checked) };
        if (p.project_links.requires_sync_from) {
          body.sync_from = from.value.trim();
          if (!/^\d{4}-\d{2}-\d{2}$/.test(body.sync_from)) { showError(box, "Enter the sync-from date as YYYY-MM-DD, e.g. 2026-01-01."); from.focus(); return; }
        }
        if (!body.remote_project_ids.length) { showError(box, "Select at least one " + p.display_name + " project."); search.focus(); return; }
        return api("PUT", base, body).then(function (l) {
          link = l;
          tick.disabled = true;
          announce(p.display_name + " settings saved for " + project.name);
          out.appendChild(h("p", { class: "notice", role: "status", text: "Saved." }));
          resetArea.hidden = false;
        }, function (err) {
          showError(box, err);
          if (err.fields && err.fields.indexOf("sync_from") >= 0) from.focus();
        });
      }, { box: box, class: "primary", name: "save-link" }));
      form.appendChild(acts);
    }
    form.appendChild(box);

    // Preview, reset and sync, clear data.
    var resetArea = h("div", { hidden: !link });
    form.appendChild(resetArea);
    var modeName = id("mode");
    var refetch = h("input", { type: "radio", name: modeName, id: modeName + "-r", value: "refetch", checked: true });
    var wipe = h("input", { type: "radio", name: modeName, id: modeName + "-w", value: "wipe" });
    if (manager && p.work_logs_in) {
      resetArea.appendChild(h("h3", { text: "Reset and sync all work logs" }));
      resetArea.appendChild(h("fieldset", { class: "radios" }, h("legend", { text: "How" }),
        h("label", { for: refetch.id }, refetch, "Refetch: read again and apply the differences"),
        h("label", { for: wipe.id }, wipe, "Wipe: delete synced logs, then read everything again")));
      var rbox = errorBox();
      var racts = h("div", { class: "actions" });
      racts.appendChild(action("Preview", function () {
        return api("POST", base + "/reset-and-sync", { mode: wipe.checked ? "wipe" : "refetch", preview: true }).then(function (pv) {
          preview = pv;
          clear(out);
          out.appendChild(h("h3", { text: "Preview: what would change" }));
          out.appendChild(counts(pv, "Preview"));
          missing(out, pv.missing_people, project);
        });
      }, { box: rbox, name: "preview" }));
      racts.appendChild(action("Reset and sync all work logs", function () {
        return api("POST", base + "/reset-and-sync", { mode: wipe.checked ? "wipe" : "refetch" }).then(function (r) {
          clear(out);
          var prog = h("div");
          out.appendChild(prog);
          var expected = preview ? preview.created + preview.updated + preview.deleted + preview.unchanged + preview.skipped : null;
          return follow(prog, r.run_id, expected).then(function () {
            return api("GET", base).then(function (l) { link = l; missing(out, l.missing_people, project); });
          });
        });
      }, { box: rbox, class: "primary", name: "reset" }));
      racts.appendChild(action("Clear data", function () {
        return confirmDialog("Clear " + p.display_name + " data of " + project.name + "?", [
          "This deletes every work log synced from " + p.display_name + " on this project.",
          "The link and its settings stay; the next synchronization brings the work logs back.",
        ], "Clear data").then(function (yes) {
          if (!yes) return;
          return api("POST", base + "/clear").then(function (r) {
            clear(out).appendChild(h("p", { class: "notice", role: "status", text: "Deleted " + r.deleted + " work logs." }));
          });
        });
      }, { box: rbox, class: "danger", name: "clear" }));
      resetArea.appendChild(racts);
      resetArea.appendChild(rbox);
    }
    form.appendChild(out);
    if (link) missing(out, link.missing_people, project);
  }

  function missing(out, people, project) {
    var old = out.querySelector(".missing");
    if (old) old.remove();
    if (!people || !people.length) return;
    var sec = h("div", { class: "missing" });
    sec.appendChild(h("h3", { text: "People who are missing (" + people.length + ")" }));
    sec.appendChild(h("p", { text: "Their work logs sync as soon as a person with this e-mail exists: add them as Manager or Employee with this e-mail." }));
    var table = h("table", null, h("thead", null, h("tr", null, h("th", { scope: "col", text: "Name" }), h("th", { scope: "col", text: "E-mail" }), h("th", { scope: "col", text: "Add" }))));
    var tb = h("tbody");
    people.forEach(function (mp) {
      var cell = h("td");
      if (mp.email && roleAtLeast("admin")) {
        var box = errorBox();
        var row = h("div", { class: "actions tight" });
        cell.appendChild(row);
        [["manager", "Add as Manager"], ["member", "Add as Employee"]].forEach(function (r) {
          row.appendChild(action(r[1], function () {
            return api("POST", "/v1/people", { name: mp.name, email: mp.email, role: r[0] }).then(function () {
              clear(cell).appendChild(h("span", { class: "notice", text: "Added; their logs sync on the next run." }));
              announce(mp.name + " added");
            });
          }, { box: box, name: "add-" + r[0] }));
        });
        cell.appendChild(box);
      } else if (!mp.email) {
        cell.appendChild(h("span", { class: "muted", text: "No e-mail in the provider" }));
      } else {
        cell.appendChild(h("span", { class: "muted", text: "An admin can add them" }));
      }
      tb.appendChild(h("tr", null, h("td", { text: mp.name }), h("td", { text: mp.email || "—" }), cell));
    });
    table.appendChild(tb);
    sec.appendChild(table);
    out.appendChild(sec);
  }

  // ---------------------------------------------------------------- review list
  var REASON = {
    several_candidates: "Several records here could be this one.",
    similar_name: "A record here has a similar name.",
  };

  function reviewScreen(p) {
    var m = screen(p.display_name + " review list", true);
    m.appendChild(h("p", { text: "Records of " + p.display_name + " that could not be matched for sure. Link each to a record here, create a new one, or ignore it." }));
    var body = h("div");
    m.appendChild(body);
    loading(body, function () { return getAll("/v1/connections/" + p.id + "/review"); }, function (items) {
      if (!items.length) { body.appendChild(h("p", { class: "notice", text: "Nothing to review." })); return; }
      var ul = h("ul", { class: "grid", "aria-label": "Items to review" });
      items.forEach(function (it) { ul.appendChild(reviewItem(p, it)); });
      body.appendChild(ul);
    });
  }

  function orgNo(n) { return n ? "org. no. " + n : "no org. no."; }

  function reviewItem(p, it) {
    var tid = id("rv");
    var li = h("li", { class: "card", "data-review": it.id, "aria-labelledby": tid });
    li.appendChild(h("h2", { id: tid, text: it.remote.name }));
    li.appendChild(h("p", { class: "muted", text: (it.kind === "customer" ? "Customer" : "Project") + " in " + p.display_name + " · " + (it.kind === "customer" ? orgNo(it.remote.organization_number) : (it.remote.number ? "no. " + it.remote.number : "") + (it.remote.customer_name ? " · " + it.remote.customer_name : "")) }));
    li.appendChild(h("p", { text: REASON[it.reason] || it.reason }));
    if (it.ignored) li.appendChild(h("p", null, h("span", { class: "badge off", text: "Ignored" })));
    var name = id("cand");
    var fs = h("fieldset", null, h("legend", { text: "Link to" }));
    (it.candidates || []).forEach(function (c, i) {
      var rid = id("c");
      fs.appendChild(h("label", { class: "inline", for: rid }, h("input", { type: "radio", name: name, id: rid, value: c.id, checked: i === 0 }), c.name + (it.kind === "customer" ? " (" + orgNo(c.organization_number) + ")" : "")));
    });
    if (it.candidates && it.candidates.length) li.appendChild(fs);
    var box = errorBox();
    var acts = h("div", { class: "actions" });
    function answer(body, doneText) {
      return api("POST", "/v1/connections/" + p.id + "/review/" + encodeURIComponent(it.id), body).then(function (res) {
        announce(doneText);
        if (res && res.id) li.replaceWith(reviewItem(p, res));
        else clear(li).appendChild(h("p", { class: "notice", text: it.remote.name + ": " + doneText }));
      });
    }
    if (it.candidates && it.candidates.length) {
      acts.appendChild(action("Link", function () {
        var sel = fs.querySelector("input:checked");
        return answer({ action: "link", target_id: sel.value }, "linked");
      }, { box: box, class: "primary", name: "link" }));
    }
    acts.appendChild(action("Create", function () { return answer({ action: "create" }, "created"); }, { box: box, name: "create" }));
    if (it.ignored) acts.appendChild(action("Look again", function () { return answer({ action: "reset" }, "will be looked at again on the next sync"); }, { box: box, name: "reset" }));
    else acts.appendChild(action("Ignore", function () { return answer({ action: "ignore" }, "ignored"); }, { box: box, name: "ignore" }));
    li.appendChild(acts);
    li.appendChild(box);
    return li;
  }

  // ---------------------------------------------------------------- person links
  function peopleScreen(p) {
    var m = screen(p.display_name + " person links", true);
    m.appendChild(h("p", { text: "Link each person here to their " + p.display_name + " user. Suggestions come from matching e-mails." }));
    var body = h("div");
    m.appendChild(body);
    loading(body, function () {
      return Promise.all([getAll("/v1/connections/" + p.id + "/remote-users"), getAll("/v1/people?limit=1000")]);
    }, function (r) {
      var users = r[0], people = r[1];
      var byId = {};
      people.forEach(function (x) { byId[x.id] = x; });
      var table = h("table", null, h("thead", null, h("tr", null,
        h("th", { scope: "col", text: p.display_name + " user" }), h("th", { scope: "col", text: "E-mail" }),
        h("th", { scope: "col", text: "Person here" }), h("th", { scope: "col", text: "Action" }))));
      var tb = h("tbody");
      users.forEach(function (u) { tb.appendChild(userRow(p, u, people, byId)); });
      table.appendChild(tb);
      body.appendChild(table);
    });
  }

  function userRow(p, u, people, byId) {
    var tr = h("tr", { "data-remote-user": u.id });
    var sid = id("person");
    var sel = h("select", { id: sid, "aria-label": "Person for " + u.name });
    sel.appendChild(h("option", { value: "", text: "— choose —" }));
    people.forEach(function (x) { sel.appendChild(h("option", { value: x.id, text: x.name + " <" + x.email + ">" })); });
    sel.value = u.linked_person_id || u.suggested_person_id || "";
    var note = u.linked_person_id ? h("span", { class: "badge ok", text: "Linked" }) : (u.suggested_person_id ? h("span", { class: "badge warn", text: "Suggested by e-mail" }) : null);
    var box = errorBox();
    var cell = h("td");
    function reRender(linked) {
      u.linked_person_id = linked;
      tr.replaceWith(userRow(p, u, people, byId));
    }
    if (u.linked_person_id) {
      cell.appendChild(action("Unlink", function () {
        return api("DELETE", "/v1/people/" + encodeURIComponent(u.linked_person_id) + "/integrations/" + p.id).then(function () { announce(u.name + " unlinked"); reRender(null); });
      }, { box: box, name: "unlink" }));
    }
    cell.appendChild(action(u.linked_person_id ? "Change" : "Link", function () {
      if (!sel.value) { showError(box, "Choose a person first."); sel.focus(); return; }
      return api("PUT", "/v1/people/" + encodeURIComponent(sel.value) + "/integrations/" + p.id, { remote_user_id: u.id }).then(function () { announce(u.name + " linked"); reRender(sel.value); });
    }, { box: box, class: "primary", name: "link" }));
    cell.appendChild(box);
    tr.appendChild(h("td", { text: u.name + (u.initials ? " (" + u.initials + ")" : "") + (u.active === false ? " — inactive" : "") }));
    tr.appendChild(h("td", { text: u.email || "—" }));
    tr.appendChild(h("td", null, sel, note));
    tr.appendChild(cell);
    return tr;
  }

  // ---------------------------------------------------------------- start
  function start() {
    if (!state.token) {
      clear(main()).appendChild(h("p", { text: "Waiting for the product to pass your sign-in… Open this page from the product's Integrations settings." }));
      return;
    }
    state.claims = decodeClaims(state.token);
    var m = main();
    loading(m, function () {
      return Promise.all([get("/v1/workspace"), get("/v1/providers")]);
    }, function (r) {
      state.workspace = r[0];
      state.providers = r[1].items || [];
      if (state.project) go("project", state.project);
      else go("list");
    });
  }

  function boot() {
    readFragment();
    window.addEventListener("hashchange", function () { readFragment(); if (state.token) start(); });
    tellHost({ type: "hourbridge:ready" });
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
