/* One station: its entries on a station-local day (today by default, live), health, opening
 * hours (editable by staff who may act), and remote opening with a confirmation and the
 * station's answer (the command's result, as the live feed and the command route report it). */
import { get, post, patch, qs, errorText } from "../api.js";
import { h, clear, field } from "../dom.js";
import { t, tr, todayIn, dateTime } from "../i18n.js";
import { canAct, isAdmin, loadStations } from "../state.js";
import { EntryList } from "../entries.js";
import * as live from "../live.js";
import { ask, toast } from "../ui.js";
import { stateBadge, cameraBadge, checkBadge, clockBadge, rosterText, heartbeat } from "../health.js";
import { stationForm } from "../station_form.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FINAL = new Set(["ok", "failed", "expired"]);

export async function mount(view, { id }) {
  let station;
  try {
    station = await get(`/api/v1/stations/${encodeURIComponent(id)}`);
  } catch (err) {
    view.append(h("h1", {}, tr("station.title")), h("p", { className: "error" }, errorText(err)));
    return null;
  }
  const zone = station.timezone;
  const day = h("input", { type: "date", id: "station-day", value: todayIn(zone) });
  const list = h("ul", { className: "entries", id: "station-entries" });
  const count = h("p", { className: "muted", role: "status" });
  const healthBox = h("div");
  const hoursBox = h("div");
  const openBox = h("div");
  const titleState = h("span", { id: "station-state" }, stateBadge(station)); // kept current by renderHealth
  view.append(
    h("h1", {}, station.name, " ", h("span", { className: "muted" }, station.station_id), " ", titleState),
    h("div", { className: "grid2" },
      h("section", { className: "card", "aria-labelledby": "entries-h" },
        h("h2", { id: "entries-h" }, tr("station.entries")),
        h("div", { className: "filters" }, field(tr("station.day"), day)),
        count, list),
      h("div", {},
        h("section", { className: "card", "aria-labelledby": "open-h" }, h("h2", { id: "open-h" }, tr("station.remote_open")), openBox),
        h("section", { className: "card", "aria-labelledby": "health-h" }, h("h2", { id: "health-h" }, tr("station.health")), healthBox),
        h("section", { className: "card", "aria-labelledby": "hours-h" }, h("h2", { id: "hours-h" }, tr("station.hours")), hoursBox),
        posterCard(station))));

  const entries = new EntryList(list, 1000);
  function recount() {
    const events = [...entries.items.values()].map((i) => i.event);
    count.textContent = tr("station.day_count", { n: events.filter((e) => e.kind === "entry").length, all: events.length });
  }
  async function loadDay() {
    try {
      entries.replace(await get(`/api/v1/events${qs({ station_id: station.station_id, day: day.value, limit: 1000 })}`));
      recount();
    } catch (err) { count.textContent = errorText(err); }
  }
  day.onchange = loadDay;

  function renderHealth() {
    const s = station;
    const health = s.health || {};
    const row = (key, ...value) => [h("dt", {}, tr(key)), h("dd", {}, ...value)];
    clear(titleState).append(stateBadge(s));
    clear(healthBox).append(h("dl", { className: "kv" },
      ...row("health.state", stateBadge(s)),
      ...row("health.heartbeat", heartbeat(s), s.last_seen_at ? ` (${dateTime(s.last_seen_at, zone)})` : ""),
      ...row("health.camera", cameraBadge(health), health.camera_fps ? ` ${Number(health.camera_fps).toFixed(1)} fps` : ""),
      ...row("health.disk", checkBadge(health.disk, health.disk_detail), health.disk_detail ? ` ${health.disk_detail}` : ""),
      ...row("health.clock", clockBadge(health)),
      ...row("health.outbox", health.outbox_depth ?? tr("common.unknown")),
      ...row("health.roster", rosterText(s)),
      ...row("health.door", health.door_open === null || health.door_open === undefined ? tr("common.unknown")
        : tr(health.door_open ? "door.open" : "door.closed"), health.door_alarm ? ` · ${tr("door.alarm")}` : ""),
      ...row("health.address", s.address || "–"),
      ...row("health.contact", [s.contact.name, s.contact.phone].filter(Boolean).join(" ") || "–"),
      ...row("health.services", s.services.join("、") || "–"),
      ...row("health.groups", s.allowed_groups.length ? s.allowed_groups.join("、") : tr("station.all_groups")),
    ));
    if (canAct()) healthBox.append(h("button", { type: "button", id: "station-edit", onclick: editStation }, tr("station.edit")));
  }

  async function editStation() {
    let districts = [{ district_id: station.district_id, name: station.district_id }];
    if (isAdmin()) { try { districts = await get("/api/v1/districts"); } catch (e) { /* keep its own */ } }
    const form = stationForm(station, { districts, districtEditable: isAdmin() });
    const saved = await ask({
      title: tr("station.edit_title", { name: station.name }),
      body: [form.element],
      ok: tr("common.save"),
      action: async () => {
        const values = form.values();
        try { station = await patch(`/api/v1/stations/${encodeURIComponent(station.station_id)}`, values); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (saved) { toast(tr("common.saved")); renderHealth(); loadStations(true).catch(() => {}); }
  }

  function hoursText(hours) {
    if (hours.always_open) return tr("hours.always");
    return DAYS.map((d) => {
      const v = (hours.weekly || {})[d];
      const text = !v || v === "closed" ? tr("hours.closed") : v === "24h" ? tr("hours.24h") : [v].flat().join(", ");
      return `${tr(`day.${d}`)} ${text}`;
    }).join("；");
  }

  function renderHours() {
    const hours = station.hours || {};
    clear(hoursBox).append(
      h("p", { id: "hours-text" }, hoursText(hours)),
      h("p", { className: "muted" }, tr("hours.zone", { zone }), " · ", station.open_now ? tr("stations.open") : tr("stations.closed")));
    if (!canAct()) return;
    hoursBox.append(h("button", { type: "button", id: "hours-edit", onclick: editHours }, tr("hours.edit")));
  }

  async function editHours() {
    const hours = station.hours || {};
    const always = h("input", { type: "checkbox", checked: Boolean(hours.always_open) });
    const inputs = Object.fromEntries(DAYS.map((d) => {
      const v = (hours.weekly || {})[d];
      return [d, h("input", { value: v ? [v].flat().join(", ") : "closed", maxlength: "200", spellcheck: "false" })];
    }));
    const saved = await ask({
      title: tr("hours.edit_title", { name: station.name }),
      body: [h("label", { className: "check" }, always, h("span", {}, tr("hours.always"))),
        h("p", { className: "muted" }, tr("hours.help")),
        h("div", { className: "form-grid" }, DAYS.map((d) => field(tr(`day.${d}`), inputs[d])))],
      ok: tr("common.save"),
      action: async () => {
        const weekly = {};
        for (const d of DAYS) {
          const text = inputs[d].value.trim();
          if (!text || text === "closed") continue;
          weekly[d] = text === "24h" ? "24h" : text.split(/[,，、]\s*/).filter(Boolean);
        }
        const schedule = { timezone: zone, always_open: always.checked, weekly: always.checked ? {} : weekly,
          holidays: always.checked ? {} : (hours.holidays || {}) };
        try { station = await patch(`/api/v1/stations/${encodeURIComponent(station.station_id)}`, { schedule }); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (saved) { toast(tr("common.saved")); renderHours(); }
  }

  function renderOpen() {
    clear(openBox);
    if (!canAct()) { openBox.append(h("p", { className: "muted" }, tr("station.viewer_cannot_open"))); return; }
    const reasonInput = h("input", { id: "open-reason", maxlength: "200", autocomplete: "off", placeholder: tr("open.reason_hint") });
    const seconds = h("input", { id: "open-seconds", type: "number", min: "1", max: "30", step: "1", value: "5", inputmode: "numeric" });
    const result = h("div", { id: "open-result", className: "result", role: "status", hidden: true });
    const button = h("button", { type: "button", id: "open-door", className: "primary" }, tr("open.button"));
    button.onclick = async () => {
      const reason = reasonInput.value.trim();
      if (!reason) { result.hidden = false; result.dataset.state = "failed"; result.textContent = tr("open.reason_required"); reasonInput.focus(); return; }
      const secs = Math.min(30, Math.max(1, Number(seconds.value) || 5));
      const confirmed = await ask({
        title: tr("open.confirm_title"),
        body: [h("p", {}, tr("open.confirm", { name: station.name, s: secs })), h("p", { className: "muted" }, tr("open.confirm_reason", { reason }))],
        ok: tr("open.confirm_ok"),
        danger: true,
      });
      if (!confirmed) return;
      button.disabled = true;
      result.hidden = false;
      result.dataset.state = "pending";
      result.textContent = tr("open.sending");
      try {
        const answer = await post(`/api/v1/stations/${encodeURIComponent(station.station_id)}/commands`, { name: "open", reason, seconds: secs });
        await follow(answer.command_id, result);
      } catch (err) {
        result.dataset.state = "failed";
        result.textContent = errorText(err);
      } finally {
        button.disabled = false;
      }
    };
    openBox.append(field(tr("open.reason"), reasonInput), field(tr("open.seconds"), seconds), button, result);
  }

  /** Follow a command until the station answered (live `result` notices wake it up early). */
  function follow(commandId, result) {
    return new Promise((resolve) => {
      let timer = null;
      let stopped = false;
      const finish = () => { stopped = true; clearTimeout(timer); off(); resolve(); };
      const check = async () => {
        if (stopped) return;
        try {
          const command = await get(`/api/v1/commands/${encodeURIComponent(commandId)}`);
          showCommand(command, result);
          if (FINAL.has(command.state)) { finish(); return; }
        } catch (err) {
          result.dataset.state = "failed";
          result.textContent = errorText(err);
          finish();
          return;
        }
        timer = setTimeout(check, 1000);
      };
      const off = live.on("result", (data) => { if (data.ref === commandId) { clearTimeout(timer); check(); } });
      check();
    });
  }

  function showCommand(command, result) {
    const state = command.state || "pending";
    const answer = command.result || {};
    result.dataset.state = state;
    result.dataset.command = command.command_id; // which command this answer is about
    // Why it failed: the command's own error (`station_offline`: nothing was sent; or the
    // station's refusal code) in the page's language when known, else the station's words.
    const code = command.error || answer.error || answer.code || "";
    const message = (code && t(`error.${code}`)) || command.message || answer.message || code;
    result.textContent = tr(`open.state.${state}`, { message }, state) + (message && state === "failed" ? ` (${message})` : "");
  }

  const off = [
    live.on("event", (event) => {
      if (event.station_id === station.station_id && day.value === todayIn(zone)) { entries.add(event); recount(); }
    }),
    live.on("snapshot", (data) => entries.snapshot(data)),
    live.on("status", async (data) => {
      if (data.station_id !== station.station_id) return;
      try { station = await get(`/api/v1/stations/${encodeURIComponent(station.station_id)}`); renderHealth(); } catch (e) { /* later */ }
    }),
  ];
  renderHealth();
  renderHours();
  renderOpen();
  await loadDay();
  loadStations(true).catch(() => {});
  return () => off.forEach((fn) => fn());
}

/** The door poster (issue 11): its QR code opens the station's phone page, to register and open. */
function posterCard(station) {
  const base = `/api/v1/stations/${encodeURIComponent(station.station_id)}/poster`;
  return h("section", { className: "card", "aria-labelledby": "poster-h" },
    h("h2", { id: "poster-h" }, tr("station.poster")),
    h("p", { className: "muted" }, tr("station.poster_help")),
    h("a", { className: "button", id: "poster-pdf", href: `${base}.pdf`, download: "" }, tr("station.poster_pdf")), " ",
    h("a", { className: "button", id: "poster-png", href: `${base}.png`, download: "" }, tr("station.poster_png")));
}
