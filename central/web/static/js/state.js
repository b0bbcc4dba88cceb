/* What every view shares: who is logged in, the dashboard settings, the stations this account
 * may see (refreshed on demand and on live status notices). */
import { get } from "./api.js";

export const app = {
  me: null, // {username, role, district_id, csrf_token}
  settings: null,
  stations: new Map(),
  stationsLoaded: 0,
};

export const canAct = () => app.me && (app.me.role === "admin" || app.me.role === "district");
export const isAdmin = () => app.me && app.me.role === "admin";

export async function loadStations(force = false) {
  if (!force && app.stationsLoaded && Date.now() - app.stationsLoaded < 15000) return app.stations;
  const list = await get("/api/v1/stations");
  app.stations = new Map(list.map((s) => [s.station_id, s]));
  app.stationsLoaded = Date.now();
  return app.stations;
}

export const stationZone = (id) => (app.stations.get(id) || {}).timezone || "Asia/Shanghai";
export const stationName = (id) => (app.stations.get(id) || {}).name || id;

/** online | offline | stale (no heartbeat for longer than the alarms' offline threshold) | unknown */
export function stationState(station) {
  if (!station) return "unknown";
  const age = station.health ? station.health.heartbeat_age_s : null;
  const limit = app.settings ? app.settings.offline_after_s : 180;
  if (station.state === "online" && age !== null && age > limit) return "stale";
  return station.state || "unknown";
}
