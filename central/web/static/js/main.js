/* The staff dashboard: plain ES modules, no build step, no CDN. This module logs in, keeps the
 * session, draws the menu for the account's role and routes #/<view>/<id> to one module per view
 * (views/*.js, each `mount(element, params)` returning a clean-up function). */
import { get, post, setCsrf, onExpired, errorText } from "./api.js";
import { $, clear } from "./dom.js";
import * as i18n from "./i18n.js";
import { tr } from "./i18n.js";
import { app, isAdmin, loadStations } from "./state.js";
import * as live from "./live.js";
import * as alarms from "./alarms.js";

const VIEWS = {
  live: () => import("./views/live.js"),
  stations: () => import("./views/stations.js"),
  station: () => import("./views/station.js"),
  map: () => import("./views/map.js"),
  members: () => import("./views/members.js"),
  member: () => import("./views/member.js"),
  visits: () => import("./views/visits.js"),
  audit: () => import("./views/audit.js"),
  registrations: () => import("./views/registrations.js"),
  staff: () => import("./views/staff.js"),
  account: () => import("./views/account.js"),
};
const current = { cleanup: null, token: 0 };

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map((p) => decodeURIComponent(p));
  let [name, id] = parts;
  if (name === "stations" && id) name = "station";
  else if (name === "members" && id) name = "member";
  if (!VIEWS[name]) name = "live";
  return { name, id: id || null, nav: name === "station" ? "stations" : name === "member" ? "members" : name };
}

async function route() {
  if (!app.me) return;
  const { name, id, nav } = parseRoute();
  if (name === "staff" && !isAdmin()) { location.hash = "#/live"; return; }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const token = ++current.token;
  if (current.cleanup) { try { current.cleanup(); } catch (e) { /* view already gone */ } }
  current.cleanup = null;
  const view = clear($("view"));
  view.dataset.view = name;
  try {
    const module = await VIEWS[name]();
    if (token !== current.token) return;
    current.cleanup = (await module.mount(view, { id })) || null;
  } catch (err) {
    if (token === current.token) view.append(errorText(err));
  }
}

function showLogin(message) {
  app.me = null;
  setCsrf(null);
  live.stop();
  alarms.stop();
  if (current.cleanup) { try { current.cleanup(); } catch (e) { /* gone */ } current.cleanup = null; }
  for (const id of ["nav", "logout", "me", "view", "sound"]) $(id).hidden = true;
  $("view-login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-user").focus();
}

async function showApp(session) {
  app.me = session;
  setCsrf(session.csrf_token);
  $("view-login").hidden = true;
  for (const id of ["nav", "logout", "me", "view"]) $(id).hidden = false;
  $("me").textContent = `${session.username} · ${tr(`role.${session.role}`)}`;
  for (const el of document.querySelectorAll("[data-admin]")) el.hidden = !isAdmin();
  app.settings = await get("/api/v1/dashboard/settings");
  await loadStations(true);
  live.start(checkSession);
  alarms.init();
  await route();
}

async function checkSession() {
  try {
    const me = await get("/api/v1/auth/me");
    if (app.me) setTimeout(() => { if (app.me && !live.connected()) live.start(checkSession); }, 3000);
    return me;
  } catch (e) {
    return null; // a 401 already showed the login
  }
}

async function login(event) {
  event.preventDefault();
  const username = $("login-user").value.trim();
  const password = $("login-pass").value;
  $("login-error").textContent = "";
  if (!username || !password) { $("login-error").textContent = tr("auth.missing"); return; }
  $("login-submit").disabled = true;
  try {
    const session = await post("/api/auth/login", { username, password }, { login: true });
    $("login-pass").value = "";
    await showApp(session);
  } catch (err) {
    $("login-error").textContent = errorText(err);
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout() {
  try { await post("/api/v1/auth/logout"); } catch (e) { /* already gone */ }
  showLogin("");
}

async function switchLang() {
  await i18n.load(i18n.other());
  $("lang").textContent = tr("lang.switch");
  $("lang").setAttribute("lang", i18n.other());
  if (app.me) {
    $("me").textContent = `${app.me.username} · ${tr(`role.${app.me.role}`)}`;
    alarms.refresh();
    route();
  }
}

async function boot() {
  await i18n.load(i18n.preferred());
  $("lang").textContent = tr("lang.switch");
  $("lang").setAttribute("lang", i18n.other());
  $("lang").onclick = switchLang;
  $("login-form").onsubmit = login;
  $("logout").onclick = logout;
  onExpired(() => { if (app.me) showLogin(tr("auth.expired")); });
  window.addEventListener("hashchange", route);
  try {
    const session = await get("/api/v1/auth/me", { login: true });
    await showApp(session);
  } catch (e) {
    showLogin("");
  }
}

boot();
