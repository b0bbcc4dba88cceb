/* Live entries across the stations this account sees: the latest 100 from the database, then
 * every new one as the live feed brings it (no reload), with its snapshot when it arrives. */
import { get, qs, errorText } from "../api.js";
import { h, debounce } from "../dom.js";
import { tr } from "../i18n.js";
import { app } from "../state.js";
import { EntryList } from "../entries.js";
import * as live from "../live.js";

export async function mount(view) {
  const status = h("p", { className: "muted", role: "status" });
  const list = h("ul", { className: "entries", id: "live-entries", "aria-live": "polite", "aria-relevant": "additions" });
  const station = h("select", { id: "live-station" }, h("option", { value: "" }, tr("live.all_stations")),
    [...app.stations.values()].map((s) => h("option", { value: s.station_id }, `${s.name} (${s.station_id})`)));
  const kinds = h("select", { id: "live-kind" },
    h("option", { value: "" }, tr("live.all_kinds")),
    h("option", { value: "entry" }, tr("event.entry")),
    h("option", { value: "refused" }, tr("event.refused")),
    h("option", { value: "alarmish" }, tr("live.alarm_kinds")));
  view.append(
    h("h1", {}, tr("live.title")),
    h("div", { className: "filters" },
      h("label", { htmlFor: "live-station", className: "visually-hidden" }, tr("live.station_filter")), station,
      h("label", { htmlFor: "live-kind", className: "visually-hidden" }, tr("live.kind_filter")), kinds),
    status, list);
  const entries = new EntryList(list, 200);
  const ALARMISH = new Set(["emergency", "door_forced", "door_held_open", "tamper", "lockout", "camera_down", "disk_full", "clock_jump"]);
  const wanted = (event) => (!station.value || event.station_id === station.value)
    && (!kinds.value || (kinds.value === "alarmish" ? ALARMISH.has(event.kind) : event.kind === kinds.value));

  async function reload() {
    try {
      const params = { limit: 100, station_id: station.value || undefined };
      if (kinds.value && kinds.value !== "alarmish") params.kind = kinds.value;
      if (kinds.value === "alarmish") params.kind = [...ALARMISH];
      const events = await get(`/api/v1/events${qs(params)}`);
      entries.replace(events.filter(wanted));
      status.textContent = events.length ? "" : tr("live.none");
    } catch (err) {
      status.textContent = errorText(err);
    }
  }
  const later = debounce(reload, 300);
  station.onchange = reload;
  kinds.onchange = reload;
  const off = [
    live.on("event", (event) => { if (wanted(event)) { entries.add(event); status.textContent = ""; } }),
    live.on("snapshot", (data) => entries.snapshot(data)),
    live.on("resync", (data) => { if (data.reason !== "open" || entries.items.size === 0) later(); }),
  ];
  await reload();
  return () => off.forEach((fn) => fn());
}
