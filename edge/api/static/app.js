/* yizhan installer page: plain JavaScript, no build step, no CDN (stations may be offline).
 * Talks to /auth/login and /api/v1 only. Text comes from /static/i18n/<lang>.json (zh-CN default).
 * Data from the station is always inserted as text (textContent), never as HTML.
 */
"use strict";

(function () {
  const LANGS = ["zh-CN", "en"];
  const state = {
    lang: "zh-CN",
    dict: {},
    csrf: null,
    tab: "enrol",
    captures: [],
    analysisTimer: null,
    healthTimer: null,
    eventsOffset: 0,
    names: {},
    searchTimer: null,
    previewRetry: null,
  };

  const $ = (id) => document.getElementById(id);

  function t(key, params) {
    let text = Object.prototype.hasOwnProperty.call(state.dict, key) ? state.dict[key] : null;
    if (text === null) return null;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (params[name] !== undefined && params[name] !== null ? String(params[name]) : m));
    }
    return text;
  }
  const tr = (key, params, fallback) => t(key, params) || fallback || key;

  /** h("li", {className: "x", onclick: fn}, child, "text") builds DOM without innerHTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "className" || name === "textContent" || name === "value" || name === "checked") el[name] = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // -- language ---------------------------------------------------------------------------------

  async function loadLang(lang) {
    const response = await fetch(`/static/i18n/${lang}.json`, { cache: "no-cache" });
    state.dict = await response.json();
    state.lang = lang;
    document.documentElement.lang = lang;
    document.title = tr("app.title");
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const text = t(el.dataset.i18n);
      if (text !== null) el.textContent = text;
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      const text = t(el.dataset.i18nPlaceholder);
      if (text !== null) el.placeholder = text;
    }
    $("lang").textContent = tr("lang.switch");
  }

  async function switchLang() {
    const next = state.lang === "zh-CN" ? "en" : "zh-CN";
    try { localStorage.setItem("yizhan.lang", next); } catch (e) { /* private mode */ }
    await loadLang(next);
    renderCaptures();
    if (state.tab === "members") loadMembers();
    if (state.tab === "events") loadEvents(true);
    if (state.tab === "door") loadStatus();
  }

  // -- HTTP -------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.code) || "error";
      this.body = body || {};
    }
  }

  async function api(method, path, body, options) {
    const headers = { Accept: "application/json" };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    } catch (e) {
      throw new ApiError(0, { detail: "network", code: "network" });
    }
    const text = await response.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = { detail: text.slice(0, 200) }; } }
    if (response.status === 401 && !(options && options.login)) {
      showLogin(tr("auth.expired"));
      throw new ApiError(401, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function errorText(err) {
    if (!(err instanceof ApiError)) return tr("error.generic", { detail: String(err) });
    const body = err.body || {};
    const seconds = body.retry_after_s !== undefined ? Math.ceil(body.retry_after_s) : "";
    return t(`error.${err.code}`, { detail: body.detail, s: seconds }) || tr("error.generic", { detail: body.detail || err.message });
  }

  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
  }

  // -- login ------------------------------------------------------------------------------------

  function showLogin(message) {
    state.csrf = null;
    stopLive();
    clearInterval(state.healthTimer);
    $("view-app").hidden = true;
    $("logout").hidden = true;
    $("view-login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-user").focus();
  }

  function showApp(session) {
    state.csrf = session.csrf_token;
    $("view-login").hidden = true;
    $("view-app").hidden = false;
    $("logout").hidden = false;
    switchTab(state.tab);
    refreshHealthDot();
    clearInterval(state.healthTimer);
    state.healthTimer = setInterval(refreshHealthDot, 10000);
  }

  async function onLogin(event) {
    event.preventDefault();
    const username = $("login-user").value.trim();
    const password = $("login-pass").value;
    if (!username || !password) return;
    $("login-submit").disabled = true;
    $("login-error").textContent = "";
    try {
      const session = await api("POST", "/auth/login", { username, password }, { login: true });
      $("login-pass").value = "";
      showApp(session);
    } catch (err) {
      $("login-error").textContent = errorText(err);
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function onLogout() {
    try { await api("POST", "/api/v1/auth/logout"); } catch (e) { /* already gone */ }
    showLogin("");
  }

  // -- tabs -------------------------------------------------------------------------------------

  function switchTab(name) {
    if (state.tab !== name) window.scrollTo(0, 0);
    state.tab = name;
    for (const button of document.querySelectorAll("[data-tab]")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === name));
    }
    for (const tab of ["enrol", "members", "events", "door"]) $(`tab-${tab}`).hidden = tab !== name;
    if (name === "enrol") startLive(); else stopLive();
    if (name === "members") loadMembers();
    if (name === "events") loadEvents(true);
    if (name === "door") loadStatus();
  }

  // -- live preview and hints ---------------------------------------------------------------------

  function startLive() {
    const img = $("preview");
    if (!img.getAttribute("src")) img.src = `/api/v1/camera/preview.mjpg?t=${Date.now()}`;
    if (!state.analysisTimer) pollAnalysis();
  }

  function stopLive() {
    const img = $("preview");
    img.removeAttribute("src"); // closes the MJPEG connection: the Pi stops encoding for us
    clearTimeout(state.analysisTimer);
    state.analysisTimer = null;
    drawBoxes(null);
  }

  async function pollAnalysis() {
    state.analysisTimer = null;
    if (state.tab !== "enrol" || $("view-app").hidden) return;
    if (!document.hidden) {
      try {
        const result = await api("GET", "/api/v1/camera/analysis");
        showHint(result.hint);
        drawBoxes(result);
      } catch (err) {
        if (err.status === 401) return;
      }
    }
    if (state.tab === "enrol" && !$("view-app").hidden) state.analysisTimer = setTimeout(pollAnalysis, 700);
  }

  function showHint(hint) {
    const el = $("hint");
    el.dataset.hint = hint || "";
    el.textContent = hint ? tr(`hint.${hint}`, null, hint) : "";
    el.className = `hint ${hint === "ok" ? "ok" : "warn"}`;
  }

  function drawBoxes(result) {
    const canvas = $("overlay");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!result || !result.width || !result.faces) return;
    // The image is letter-boxed (object-fit: contain) inside the 4:3 frame.
    const scale = Math.min(width / result.width, height / result.height);
    const dx = (width - result.width * scale) / 2;
    const dy = (height - result.height * scale) / 2;
    g.lineWidth = 3 * ratio;
    g.strokeStyle = result.hint === "ok" ? "#32d583" : "#fdb022";
    for (const face of result.faces) {
      const b = face.box;
      g.strokeRect((dx + b.left * scale) * ratio, (dy + b.top * scale) * ratio,
        (b.right - b.left) * scale * ratio, (b.bottom - b.top) * scale * ratio);
    }
  }

  // -- captures ---------------------------------------------------------------------------------

  async function onCapture() {
    $("capture").disabled = true;
    $("capture-error").textContent = "";
    try {
      const capture = await api("POST", "/api/v1/captures");
      addCapture(capture);
    } catch (err) {
      if (err.status !== 401) $("capture-error").textContent = errorText(err);
    } finally {
      $("capture").disabled = false;
    }
  }

  async function onUpload(event) {
    const file = event.target.files && event.target.files[0];
    event.target.value = "";
    if (!file) return;
    $("capture-error").textContent = "";
    const form = new FormData();
    form.append("photo", file, "photo");
    try {
      addCapture(await api("POST", "/api/v1/captures/upload", form));
    } catch (err) {
      if (err.status !== 401) $("capture-error").textContent = errorText(err);
    }
  }

  function addCapture(capture) {
    state.captures.push(capture);
    renderCaptures();
  }

  async function removeCapture(capture) {
    state.captures = state.captures.filter((c) => c.capture_id !== capture.capture_id);
    renderCaptures();
    try { await api("DELETE", `/api/v1/captures/${capture.capture_id}`); } catch (e) { /* expired anyway */ }
  }

  function problemText(item) {
    const params = { member: item.member_id, distance: item.distance, limit: item.limit, text: item.text };
    return tr(`problem.${item.code}`, params, item.text || item.code);
  }

  function renderCaptures() {
    const box = $("captures");
    box.replaceChildren(...state.captures.map((c) => {
      const good = c.check.ok;
      return h("div", { className: `capture ${good ? "good" : "bad"}`, "data-capture": c.capture_id, "data-ok": String(good) },
        h("img", { src: c.image_url, alt: "" }),
        h("p", { className: good ? "success" : "error" },
          good ? `✓ ${tr("enrol.photo_ok")}` : `✗ ${problemText({ code: c.check.code, text: c.check.problem })}`),
        h("button", { type: "button", onclick: () => removeCapture(c) }, tr("enrol.retake")));
    }));
  }

  // -- enrolment --------------------------------------------------------------------------------

  function dayStart(value, addDays) {
    if (!value) return null;
    const [y, m, d] = value.split("-").map(Number);
    return new Date(y, m - 1, d + (addDays || 0)).toISOString();
  }

  async function onEnrol(event) {
    event.preventDefault();
    const result = $("enrol-result");
    result.replaceChildren();
    const good = state.captures.filter((c) => c.check.ok);
    const name = $("f-name").value.trim();
    const problem = !good.length ? "enrol.no_photos" : !name ? "enrol.need_name" : !$("f-consent").checked ? "enrol.need_consent" : null;
    if (problem) { result.append(h("p", { className: "error" }, tr(problem))); return; }
    const body = {
      name,
      phone: $("f-phone").value.trim() || null,
      kind: $("f-kind").value || null,
      valid_from: dayStart($("f-from").value, 0),
      valid_until: dayStart($("f-until").value, 1), // valid through the chosen day
      consent_face: true,
      consent_cross_station: $("f-cross").checked,
      confirm_different_person: $("f-force").checked,
      confirm_same_person: $("f-same").checked,
      capture_ids: good.map((c) => c.capture_id),
    };
    const memberId = $("f-id").value.trim();
    if (memberId) body.member_id = memberId;
    $("enrol-submit").disabled = true;
    result.append(h("p", { className: "muted" }, tr("enrol.working")));
    try {
      const outcome = await api("POST", "/api/v1/enrolments", body);
      const text = tr("enrol.done", { name: outcome.member.name, id: outcome.member.member_id });
      result.replaceChildren(h("p", { className: "success", id: "enrol-done" }, `✓ ${text}`));
      if (outcome.requires_pass.length) {
        result.append(h("p", { className: "warn-text", id: "enrol-requires-pass" }, tr("enrol.requires_pass_set", {
          members: outcome.requires_pass.join(", "),
        })));
      }
      toast(text);
      $("enrol-form").reset();
      $("force-row").hidden = true;
      $("same-row").hidden = true;
      state.captures = state.captures.filter((c) => !body.capture_ids.includes(c.capture_id));
      renderCaptures();
    } catch (err) {
      if (err.status === 401) return;
      const codes = (err.body && err.body.codes) || [];
      result.replaceChildren(h("p", { className: "error" }, codes.length ? tr("enrol.refused") : errorText(err)));
      if (codes.length) result.append(h("ul", {}, codes.map((c) => h("li", {}, problemText(c)))));
      // Confirmations the installer may give (never for "same_person": one person, one id).
      if (codes.some((c) => c.code === "lookalike" || c.code === "possible_duplicate")) $("force-row").hidden = false;
      if (codes.some((c) => c.code === "unconfirmed_same_person")) $("same-row").hidden = false;
    } finally {
      $("enrol-submit").disabled = false;
    }
  }

  // -- members ----------------------------------------------------------------------------------

  function localDate(iso, minusOne) {
    if (!iso) return "";
    const when = new Date(new Date(iso).getTime() - (minusOne ? 1 : 0));
    return when.toLocaleDateString(state.lang);
  }

  function inputDate(iso, minusOne) {
    if (!iso) return "";
    const d = new Date(new Date(iso).getTime() - (minusOne ? 1 : 0));
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  async function loadMembers() {
    const q = $("member-search").value.trim();
    try {
      const page = await api("GET", `/api/v1/members?limit=200&q=${encodeURIComponent(q)}`);
      $("member-count").textContent = page.total ? tr("members.count", { n: page.total }) : tr("members.none");
      $("member-list").replaceChildren(...page.items.map(memberItem));
    } catch (err) {
      if (err.status !== 401) $("member-count").textContent = errorText(err);
    }
  }

  function memberItem(m) {
    const suspended = m.status !== "active";
    const validity = m.valid_from || m.valid_until
      ? tr("members.valid", { from: localDate(m.valid_from) || "…", until: localDate(m.valid_until, true) || "…" })
      : tr("members.always");
    const until = h("input", { type: "date", value: inputDate(m.valid_until, true), "aria-label": tr("enrol.valid_until") });
    return h("li", { "data-member": m.member_id },
      h("div", { className: "grow" },
        h("div", { className: "title" }, m.name,
          h("span", { className: `badge ${suspended ? "off" : ""}` }, tr(`status.${m.status}`, null, m.status)),
          m.requires_pass ? h("span", { className: "badge off", "data-requires-pass": "1", title: tr("members.requires_pass_hint") },
            tr("members.requires_pass")) : null),
        h("div", { className: "sub" }, [m.member_id, m.kind ? tr(`kind.${m.kind}`, null, m.kind) : null, m.phone].filter(Boolean).join(" · ")),
        h("div", { className: "sub" }, `${m.templates ? tr("members.face", { n: m.templates }) : tr("members.qr_only")} · ${validity}`),
        m.lookalikes && m.lookalikes.length ? h("div", { className: "sub", "data-lookalikes": "1" }, tr("members.lookalike_of", {
          members: m.lookalikes.map((l) => l.member_id).join(", "),
        })) : null,
        h("div", { className: "actions" },
          until,
          h("button", { type: "button", onclick: () => saveValidity(m, until.value) }, tr("members.save_validity")),
          h("button", { type: "button", onclick: () => setStatus(m, suspended ? "active" : "suspended") },
            tr(suspended ? "members.activate" : "members.suspend")),
          m.templates ? h("button", { type: "button", "data-templates": m.member_id, onclick: (ev) => toggleTemplates(m, ev.target) },
            tr("members.templates")) : null,
          h("button", { type: "button", className: "danger", onclick: () => removeMember(m) }, tr("members.delete"))),
        h("ul", { className: "templates", hidden: true })));
  }

  // One template at a time: when, how, by whom, quality; remove a wrong one.
  async function toggleTemplates(m, button) {
    const box = button.closest("li").querySelector("ul.templates");
    if (!box.hidden) { box.hidden = true; return; }
    try {
      const rows = await api("GET", `/api/v1/members/${encodeURIComponent(m.member_id)}/templates`);
      box.replaceChildren(...rows.map((t) => h("li", { "data-template": t.template_id },
        h("span", { className: "grow" }, [
          localDate(t.created_at),
          tr(`origin.${t.origin}`, null, t.origin || "—"),
          t.enrolled_by,
          t.quality.face_px ? tr("templates.face_px", { n: t.quality.face_px }) : null,
          t.confirmed && (t.confirmed.same_person || t.confirmed.different_person) ? tr("templates.confirmed") : null,
        ].filter(Boolean).join(" · ")),
        h("button", { type: "button", className: "danger", onclick: () => removeTemplate(m, t) }, tr("templates.remove")))));
      box.hidden = false;
    } catch (err) { if (err.status !== 401) toast(errorText(err)); }
  }

  async function removeTemplate(m, t) {
    if (!window.confirm(tr("templates.confirm_remove", { name: m.name }))) return;
    try {
      await api("DELETE", `/api/v1/members/${encodeURIComponent(m.member_id)}/templates/${t.template_id}`);
      toast(tr("templates.removed"));
      loadMembers();
    } catch (err) { if (err.status !== 401) toast(errorText(err)); }
  }

  async function saveValidity(m, value) {
    try {
      await api("PATCH", `/api/v1/members/${encodeURIComponent(m.member_id)}`, { valid_until: dayStart(value, 1) });
      toast(tr("members.saved"));
      loadMembers();
    } catch (err) { if (err.status !== 401) toast(errorText(err)); }
  }

  async function setStatus(m, status) {
    try {
      await api("PATCH", `/api/v1/members/${encodeURIComponent(m.member_id)}`, { status });
      loadMembers();
    } catch (err) { if (err.status !== 401) toast(errorText(err)); }
  }

  async function removeMember(m) {
    if (!window.confirm(tr("members.confirm_delete", { name: m.name }))) return;
    try {
      await api("DELETE", `/api/v1/members/${encodeURIComponent(m.member_id)}`);
      toast(tr("members.deleted", { name: m.name }));
      loadMembers();
    } catch (err) { if (err.status !== 401) toast(errorText(err)); }
  }

  // -- events -----------------------------------------------------------------------------------

  async function loadNames() {
    try {
      const page = await api("GET", "/api/v1/members?limit=500");
      state.names = Object.fromEntries(page.items.map((m) => [m.member_id, m.name]));
    } catch (err) { /* ids are shown instead */ }
  }

  async function loadEvents(reset) {
    if (reset) { state.eventsOffset = 0; $("event-list").replaceChildren(); await loadNames(); }
    const params = new URLSearchParams({ limit: "30", offset: String(state.eventsOffset) });
    if ($("event-kind").value) params.set("kind", $("event-kind").value);
    const member = $("event-member").value.trim();
    if (member) params.set("member_id", member);
    try {
      const page = await api("GET", `/api/v1/events?${params}`);
      if (reset && !page.items.length) $("event-list").append(h("li", { className: "muted" }, tr("events.none")));
      $("event-list").append(...page.items.map(eventItem));
      state.eventsOffset = page.next_offset || 0;
      $("event-more").hidden = page.next_offset === null;
    } catch (err) {
      if (err.status !== 401) toast(errorText(err));
    }
  }

  function eventItem(e) {
    const refused = e.kind === "refused";
    const thumb = e.snapshot_url
      ? h("a", { href: e.snapshot_url, target: "_blank", rel: "noopener", title: tr("events.open_photo") },
        h("img", { className: "thumb", src: e.face_url, alt: "", loading: "lazy",
          onerror: (ev) => { if (ev.target.src.indexOf("variant=face") >= 0) ev.target.src = e.snapshot_url; } }))
      : null;
    const who = e.member_id ? (state.names[e.member_id] ? `${state.names[e.member_id]} (${e.member_id})` : e.member_id) : null;
    const by = e.details && typeof e.details.by === "string"
      ? tr("events.by", { name: e.details.by.replace(/^installer:/, "") }) : null;
    const what = [e.method ? tr(`method.${e.method}`, null, e.method) : null, who,
      e.reason ? tr(`reason.${e.reason}`, null, e.reason) : null, by].filter(Boolean).join(" · ");
    return h("li", { "data-event": e.id },
      thumb,
      h("div", { className: "grow" },
        h("div", { className: "title" }, tr(`event.${e.kind}`, null, e.kind),
          h("span", { className: `badge ${refused ? "refused" : ""}` }, new Date(e.ts).toLocaleString(state.lang))),
        what ? h("div", { className: "sub" }, what) : null));
  }

  // -- door and status --------------------------------------------------------------------------

  async function onOpenDoor() {
    const seconds = Number($("door-seconds").value) || null;
    $("door-open").disabled = true;
    try {
      const result = await api("POST", "/api/v1/door/open", { seconds });
      $("door-result").textContent = result.granted
        ? tr("door.opened", { s: result.seconds })
        : tr("door.refused", { reason: tr(`reason.${result.event.reason}`, null, result.event.reason) });
      $("door-result").className = result.granted ? "success" : "error";
      loadStatus();
    } catch (err) {
      if (err.status !== 401) { $("door-result").textContent = errorText(err); $("door-result").className = "error"; }
    } finally {
      $("door-open").disabled = false;
    }
  }

  async function loadStatus() {
    try {
      const health = await api("GET", "/api/v1/health");
      setDot(health.status);
      const camera = health.camera || {};
      const rows = [
        ["health.status", tr(`health.${health.status}`, null, health.status)],
        ["health.camera", camera.state ? tr(`camera.${camera.state}`, null, camera.state) : "—"],
        ["health.fps", camera.fps !== undefined ? String(camera.fps) : "—"],
        ["health.relay", health.door ? tr(`relay.${health.door.relay}`, null, health.door.relay) : "—"],
        ["health.roster", health.roster ? `${health.roster.members} / ${health.roster.templates}` : "—"],
        ["health.outbox", String(health.outbox_depth ?? "—")],
        ["health.mqtt", !health.mqtt.enabled ? tr("health.off") : tr(health.mqtt.connected ? "health.yes" : "health.no")],
      ];
      $("status").replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, tr(key)), h("dd", {}, value)]));
    } catch (err) { /* the dot shows it */ }
  }

  function setDot(status) {
    const dot = $("health-dot");
    dot.className = `dot ${status === "ok" ? "ok" : "bad"}`;
    dot.title = tr(`health.${status}`, null, status);
  }

  async function refreshHealthDot() {
    try {
      const response = await fetch("/healthz", { credentials: "same-origin" });
      setDot((await response.json()).status);
    } catch (e) { setDot("degraded"); }
  }

  async function onChangePassword(event) {
    event.preventDefault();
    const out = $("pw-result");
    try {
      await api("POST", "/api/v1/auth/password", { current_password: $("pw-current").value, new_password: $("pw-new").value });
      out.textContent = tr("door.password_changed");
      out.className = "success";
      $("password-form").reset();
    } catch (err) {
      if (err.status !== 401) { out.textContent = errorText(err); out.className = "error"; }
    }
  }

  // -- start ------------------------------------------------------------------------------------

  async function boot() {
    let lang = "zh-CN";
    try { const saved = localStorage.getItem("yizhan.lang"); if (LANGS.includes(saved)) lang = saved; } catch (e) { /* ignore */ }
    await loadLang(lang);
    $("lang").addEventListener("click", switchLang);
    $("logout").addEventListener("click", onLogout);
    $("login-form").addEventListener("submit", onLogin);
    for (const button of document.querySelectorAll("[data-tab]")) button.addEventListener("click", () => switchTab(button.dataset.tab));
    $("capture").addEventListener("click", onCapture);
    $("upload-input").addEventListener("change", onUpload);
    $("enrol-form").addEventListener("submit", onEnrol);
    $("preview").addEventListener("error", () => {
      // Refused (too many viewers) or cut off (Wi-Fi, restart): say so and try again shortly.
      if (state.tab !== "enrol" || !$("preview").getAttribute("src")) return;
      showHint("preview_busy");
      $("preview").removeAttribute("src");
      clearTimeout(state.previewRetry);
      state.previewRetry = setTimeout(() => { if (state.tab === "enrol" && !document.hidden && !$("view-app").hidden) startLive(); }, 5000);
    });
    $("member-search").addEventListener("input", () => { clearTimeout(state.searchTimer); state.searchTimer = setTimeout(loadMembers, 250); });
    $("event-kind").addEventListener("change", () => loadEvents(true));
    $("event-member").addEventListener("change", () => loadEvents(true));
    $("event-more").addEventListener("click", () => loadEvents(false));
    $("door-open").addEventListener("click", onOpenDoor);
    $("password-form").addEventListener("submit", onChangePassword);
    // A phone in a pocket must not keep the Pi encoding preview frames: stop the stream when hidden.
    document.addEventListener("visibilitychange", () => {
      if ($("view-app").hidden || state.tab !== "enrol") return;
      if (document.hidden) stopLive(); else startLive();
    });
    try {
      showApp(await api("GET", "/api/v1/auth/me", undefined, { login: true }));
    } catch (err) {
      showLogin("");
    }
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
