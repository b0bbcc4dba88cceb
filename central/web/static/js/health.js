/* Station health in words and badges (shared by the list, the map and the station page). */
import { tr, ago } from "./i18n.js";
import { badge } from "./ui.js";
import { stationState } from "./state.js";

const STATE_TONE = { online: "good", offline: "bad", stale: "warn", unknown: "" };

export function stateBadge(station) {
  const state = stationState(station);
  return badge(tr(`station.state.${state}`), STATE_TONE[state]);
}

export function cameraBadge(health) {
  if (!health || !health.camera) return badge(tr("common.unknown"));
  return badge(tr(`camera.${health.camera}`, null, health.camera), health.camera === "up" ? "good" : "bad");
}

export function checkBadge(status, detail) {
  if (!status) return badge(tr("common.unknown"));
  const tone = status === "ok" ? "good" : status === "warn" ? "warn" : "bad";
  const el = badge(tr(`check.${status}`, null, status), tone);
  if (detail) el.title = detail;
  return el;
}

export function clockText(health) {
  if (!health || health.clock_skew_s === null || health.clock_skew_s === undefined) return tr("common.unknown");
  const skew = health.clock_skew_s;
  return Math.abs(skew) < 2 ? tr("clock.ok") : tr("clock.skew", { s: skew > 0 ? `+${skew}` : String(skew) });
}

export function clockBadge(health) {
  const bad = health && health.clock_skew_s !== null && health.clock_skew_s !== undefined && Math.abs(health.clock_skew_s) > 120;
  const status = health && health.clock;
  return badge(clockText(health), bad || status === "fail" ? "bad" : status === "warn" ? "warn" : health && health.clock ? "good" : "");
}

export function rosterText(station) {
  const health = station.health || {};
  if (health.roster_version === null || health.roster_version === undefined) return tr("common.unknown");
  if (!health.roster_behind) return tr("roster.current", { v: health.roster_version });
  return tr("roster.behind", { v: health.roster_version, n: health.roster_behind });
}

export const heartbeat = (station) => ago(station.health ? station.health.heartbeat_age_s : null);
