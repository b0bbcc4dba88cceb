/* Text: /dashboard/i18n/<lang>.json, zh-CN by default, English on request (remembered).
 * Event kinds, methods and refusal reasons from the stations are translated with `kind`,
 * `method`, `reason`; an unknown word is shown as it is (never hidden). */

const LANGS = ["zh-CN", "en"];
const state = { lang: "zh-CN", dict: {} };

export function lang() { return state.lang; }

export function t(key, params) {
  let text = Object.prototype.hasOwnProperty.call(state.dict, key) ? state.dict[key] : null;
  if (text === null) return null;
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (params[name] !== undefined && params[name] !== null ? String(params[name]) : m));
  }
  return text;
}

/** t() with a fallback: the key itself when nothing else (so a missing text is visible). */
export const tr = (key, params, fallback) => t(key, params) ?? fallback ?? key;

export const kind = (word) => (word ? tr(`event.${word}`, null, word) : "");
export const method = (word) => (word ? tr(`method.${word}`, null, word) : "");
export const reason = (word) => (word ? tr(`reason.${word}`, null, word) : "");
export const alarmKind = (word) => (word ? tr(`alarm.${word}`, null, word) : "");

export function preferred() {
  let saved = null;
  try { saved = localStorage.getItem("yizhan.dashboard.lang"); } catch (e) { /* private mode */ }
  return LANGS.includes(saved) ? saved : "zh-CN";
}

export async function load(lang) {
  const response = await fetch(`/dashboard/i18n/${lang}.json`, { cache: "no-cache" });
  state.dict = await response.json();
  state.lang = lang;
  try { localStorage.setItem("yizhan.dashboard.lang", lang); } catch (e) { /* private mode */ }
  document.documentElement.lang = lang;
  document.title = tr("app.title");
  apply(document);
}

export function apply(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const text = t(el.dataset.i18n);
    if (text !== null) el.textContent = text;
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    const text = t(el.dataset.i18nPlaceholder);
    if (text !== null) el.placeholder = text;
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    const text = t(el.dataset.i18nAriaLabel);
    if (text !== null) el.setAttribute("aria-label", text);
  }
}

export const other = () => (state.lang === "zh-CN" ? "en" : "zh-CN");

/** Dates and times in a station's zone (the zone its opening hours are written in). */
export function dateTime(iso, timeZone, withDate = true) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
  if (timeZone) options.timeZone = timeZone;
  try {
    return new Intl.DateTimeFormat(state.lang, options).format(d);
  } catch (e) {
    return d.toISOString();
  }
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return tr("common.never");
  if (seconds < 90) return tr("time.seconds_ago", { n: Math.round(seconds) });
  if (seconds < 5400) return tr("time.minutes_ago", { n: Math.round(seconds / 60) });
  if (seconds < 172800) return tr("time.hours_ago", { n: Math.round(seconds / 3600) });
  return tr("time.days_ago", { n: Math.round(seconds / 86400) });
}

/** Today's date (YYYY-MM-DD) in a time zone. */
export function todayIn(timeZone) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: timeZone || undefined, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  return parts.slice(0, 10);
}
