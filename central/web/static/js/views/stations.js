/* The fleet as a table: health from each station's last heartbeat. Status notices from the live
 * feed (and a timer, for the heartbeat ages) refresh it. */
import { get, post, errorText } from "../api.js";
import { h, debounce } from "../dom.js";
import { tr } from "../i18n.js";
import { app, isAdmin, loadStations, stationState } from "../state.js";
import { ask, toast } from "../ui.js";
import { stationForm } from "../station_form.js";
import * as live from "../live.js";
import { stateBadge, cameraBadge, checkBadge, clockBadge, rosterText, heartbeat } from "../health.js";

export async function mount(view) {
  const search = h("input", { type: "search", id: "station-search", autocomplete: "off", placeholder: tr("stations.search") });
  const only = h("select", { id: "station-state" },
    h("option", { value: "" }, tr("stations.all")),
    ...["online", "offline", "stale", "unknown"].map((s) => h("option", { value: s }, tr(`station.state.${s}`))));
  const body = h("tbody");
  const status = h("p", { className: "muted", role: "status" });
  const add = isAdmin() ? h("button", { type: "button", className: "primary", id: "station-add", onclick: register }, tr("stations.add")) : null;
  view.append(
    h("h1", {}, tr("stations.title")),
    h("div", { className: "filters" },
      h("label", { htmlFor: "station-search", className: "visually-hidden" }, tr("stations.search")), search,
      h("label", { htmlFor: "station-state", className: "visually-hidden" }, tr("stations.state_filter")), only, add),
    status,
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "station-table" },
      h("thead", {}, h("tr", {}, ...["name", "district", "state", "heartbeat", "camera", "disk", "clock", "outbox", "roster", "open"]
        .map((c) => h("th", { scope: "col", className: c === "outbox" ? "num" : "" }, tr(`stations.col.${c}`))))),
      body)));

  function render() {
    const needle = search.value.trim().toLowerCase();
    const rows = [...app.stations.values()].filter((s) => (!needle || `${s.name} ${s.station_id} ${s.address || ""}`.toLowerCase().includes(needle))
      && (!only.value || stationState(s) === only.value));
    body.replaceChildren(...rows.map((s) => {
      const health = s.health || {};
      const cell = (label, ...content) => h("td", { "data-label": tr(`stations.col.${label}`), className: label === "outbox" ? "num" : "" }, ...content);
      return h("tr", { dataset: { station: s.station_id } },
        cell("name", h("a", { href: `#/stations/${encodeURIComponent(s.station_id)}` }, s.name), h("div", { className: "muted" }, s.station_id)),
        cell("district", s.district_id),
        cell("state", stateBadge(s)),
        cell("heartbeat", heartbeat(s)),
        cell("camera", cameraBadge(health)),
        cell("disk", checkBadge(health.disk, health.disk_detail)),
        cell("clock", clockBadge(health)),
        cell("outbox", health.outbox_depth ?? "–"),
        cell("roster", rosterText(s)),
        cell("open", s.open_now ? tr("stations.open") : tr("stations.closed")));
    }));
    status.textContent = tr("stations.count", { n: rows.length, total: app.stations.size });
  }
  async function register() {
    let districts = [];
    try { districts = await get("/api/v1/districts"); } catch (err) { toast(errorText(err)); return; }
    const form = stationForm({}, { districts, withId: true });
    let created = null;
    const done = await ask({
      title: tr("stations.add"),
      body: [h("p", { className: "muted" }, tr("stations.add_help")), form.element],
      ok: tr("common.save"),
      action: async () => {
        const values = form.values();
        try { created = await post("/api/v1/stations", values); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done && created) {
      toast(tr("stations.added", { name: created.name }));
      await reload();
    }
  }

  async function reload() {
    try { await loadStations(true); render(); } catch (err) { status.textContent = errorText(err); }
  }
  search.oninput = render;
  only.onchange = render;
  const later = debounce(reload, 1000);
  const off = [live.on("status", later), live.on("resync", later)];
  const timer = setInterval(reload, 30000);
  render();
  return () => { off.forEach((fn) => fn()); clearInterval(timer); };
}
