/* The alarm bar: every open alarm of the stations this account sees, on every page, with a
 * sound while an emergency is unacknowledged, and "acknowledge" with a required note.
 * Alarms come from GET /api/v1/alarms?state=open; the live feed's `alarm` notices (and every
 * reconnect) make the bar re-read them. Browsers only play sound after the person interacted with
 * the page: until then the bar offers a button that enables it. */
import { get, post, errorText, ApiError } from "./api.js";
import { $, clear, h } from "./dom.js";
import { tr, alarmKind, dateTime } from "./i18n.js";
import { app, canAct, stationName, stationZone } from "./state.js";
import * as live from "./live.js";
import { ask, toast } from "./ui.js";

const LOUD = new Set(["emergency", "critical"]);
const REPEAT_MS = 8000;
const state = { alarms: [], audio: null, muted: false, timer: null, beeps: 0, available: true };

export function init() {
  try { state.muted = localStorage.getItem("yizhan.dashboard.muted") === "1"; } catch (e) { /* private */ }
  const button = $("sound");
  button.hidden = false;
  showMuted();
  button.onclick = () => {
    state.muted = !state.muted;
    try { localStorage.setItem("yizhan.dashboard.muted", state.muted ? "1" : "0"); } catch (e) { /* private */ }
    showMuted();
    unlock();
    update();
  };
  $("alarm-enable-sound").onclick = () => { unlock(); update(); };
  document.addEventListener("pointerdown", unlock, { once: true, capture: true });
  document.addEventListener("keydown", unlock, { once: true, capture: true });
  live.on("alarm", () => refresh());
  live.on("resync", () => refresh());
  refresh();
}

function showMuted() {
  const button = $("sound");
  button.setAttribute("aria-pressed", state.muted ? "false" : "true");
  button.textContent = tr(state.muted ? "sound.off" : "sound.on");
}

function unlock() {
  if (!state.audio) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    state.audio = new Context();
  }
  if (state.audio.state === "suspended") state.audio.resume();
}

function beep() {
  state.beeps += 1;
  document.body.dataset.alarmBeeps = String(state.beeps); // observable by tests and assistive tooling
  const audio = state.audio;
  if (!audio || audio.state !== "running") return;
  const now = audio.currentTime;
  for (const [offset, freq] of [[0, 880], [0.25, 660], [0.5, 880], [0.75, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.3, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.22);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.24);
  }
}

export async function refresh() {
  if (!app.me || !state.available) return;
  let list;
  try {
    list = await get("/api/v1/alarms?state=open");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) state.available = false;
    return;
  }
  state.alarms = (Array.isArray(list) ? list : (list && list.alarms) || []).filter((a) => a.state === "open" || !a.state);
  render();
  update();
}

function render() {
  const bar = $("alarm-bar");
  const items = state.alarms;
  bar.hidden = items.length === 0;
  if (!items.length) return;
  bar.dataset.severity = items.some((a) => LOUD.has(a.severity)) ? "emergency" : "warning";
  $("alarm-count").textContent = tr("alarms.count", { n: items.length });
  const list = clear($("alarm-list"));
  for (const alarm of items) {
    const zone = stationZone(alarm.station_id);
    list.append(
      h("li", { dataset: { alarm: String(alarm.id), severity: alarm.severity || "" } },
        h("span", { className: "what" }, alarmKind(alarm.kind)),
        h("span", {}, alarm.station_id ? `${stationName(alarm.station_id)} (${alarm.station_id})` : ""),
        h("span", { className: "when" }, dateTime(alarm.raised_at, zone)),
        canAct()
          ? h("button", { type: "button", className: "small", onclick: () => acknowledge(alarm) }, tr("alarms.ack"))
          : null,
      ),
    );
  }
}

function update() {
  const loud = state.alarms.some((a) => LOUD.has(a.severity));
  const needsGesture = loud && !state.muted && (!state.audio || state.audio.state !== "running");
  $("alarm-enable-sound").hidden = !needsGesture;
  clearInterval(state.timer);
  state.timer = null;
  if (loud && !state.muted) {
    beep();
    state.timer = setInterval(beep, REPEAT_MS);
  }
}

async function acknowledge(alarm) {
  const note = h("textarea", { name: "note", maxlength: "1000", required: true, id: "ack-note" });
  const done = await ask({
    title: tr("alarms.ack_title", { what: alarmKind(alarm.kind), station: stationName(alarm.station_id) }),
    body: [h("label", { htmlFor: "ack-note" }, h("span", {}, tr("alarms.note")), note)],
    ok: tr("alarms.ack"),
    action: async () => {
      const text = note.value.trim();
      if (!text) throw new Error(tr("alarms.note_required"));
      try {
        await post(`/api/v1/alarms/${encodeURIComponent(alarm.id)}/ack`, { note: text });
      } catch (err) {
        throw new Error(errorText(err));
      }
    },
  });
  if (done) {
    toast(tr("alarms.acked"));
    await refresh();
  }
}

export function stop() {
  clearInterval(state.timer);
  state.timer = null;
  state.alarms = [];
  $("alarm-bar").hidden = true;
}
