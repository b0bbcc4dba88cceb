/* The stations on a map (Leaflet, vendored). Tiles come only from the server configured in
 * [dashboard] tile_url (none by default: markers on a plain grid, works offline). Marker colour
 * is the station's state; the popup links to the station page. */
import { h, loadScript, loadStyle, debounce } from "../dom.js";
import { tr } from "../i18n.js";
import { app, loadStations, stationState } from "../state.js";
import * as live from "../live.js";
import { forDisplay } from "../geo.js";
import { stateBadge, heartbeat } from "../health.js";

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function mount(view) {
  loadStyle("/dashboard/vendor/leaflet/leaflet.css");
  await loadScript("/dashboard/vendor/leaflet/leaflet.js");
  const L = window.L;
  const settings = app.settings.map;
  const box = h("div", { id: "map", className: `map${settings.tile_url ? "" : " blank"}`, role: "region", "aria-label": tr("map.title") });
  const missing = h("p", { className: "muted", id: "map-missing" });
  view.append(h("h1", {}, tr("map.title")), settings.tile_url ? null : h("p", { className: "muted" }, tr("map.no_tiles")), box, missing);
  const map = L.map(box, { zoomControl: true, attributionControl: true }).setView(settings.center, settings.zoom);
  if (settings.tile_url) {
    L.tileLayer(settings.tile_url, {
      subdomains: settings.tile_subdomains,
      maxZoom: settings.tile_max_zoom,
      attribution: escapeHtml(settings.tile_attribution || ""),
    }).addTo(map);
  }
  const layer = L.layerGroup().addTo(map);

  const labels = !settings.tile_url && app.stations.size <= 300;

  function draw(fit) {
    layer.clearLayers();
    const points = [];
    let without = 0;
    for (const s of app.stations.values()) {
      if (s.latitude === null || s.longitude === null) { without += 1; continue; }
      const point = forDisplay(s.latitude, s.longitude, settings.tile_datum);
      points.push(point);
      const state = stationState(s);
      const icon = L.divIcon({ className: "", html: `<div class="station-dot ${state}"></div>`, iconSize: [16, 16], iconAnchor: [8, 8] });
      const popup = h("div", { dataset: { station: s.station_id } },
        h("strong", {}, s.name), h("br"), s.station_id, " ", stateBadge(s), h("br"),
        tr("stations.col.heartbeat"), ": ", heartbeat(s), h("br"),
        h("a", { href: `#/stations/${encodeURIComponent(s.station_id)}` }, tr("map.open_station")));
      const marker = L.marker(point, { icon, title: `${s.name} (${tr(`station.state.${state}`)})`, keyboard: true, alt: s.name })
        .bindPopup(popup).addTo(layer);
      if (labels) {
        // Without tiles the names are the map's only landmarks (a text node: never parsed as HTML).
        marker.bindTooltip(document.createTextNode(s.name), { permanent: true, direction: "right", offset: [8, 0], className: "station-label" });
      }
    }
    missing.textContent = without ? tr("map.without_coordinates", { n: without }) : "";
    if (fit && points.length) map.fitBounds(points, { padding: [30, 30], maxZoom: 15 });
  }
  const refresh = debounce(async () => { await loadStations(true); draw(false); }, 1000);
  const off = [live.on("status", refresh)];
  draw(true);
  return () => { off.forEach((fn) => fn()); map.remove(); };
}
