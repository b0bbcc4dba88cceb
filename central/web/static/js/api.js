/* HTTP to the centre: same-origin fetch with the session cookie; unsafe methods carry the CSRF
 * token from the login (the cookie alone is refused, so another site cannot act for staff).
 * Refusals become ApiError with the server's stable `code`, which the page translates. */
import { t, tr } from "./i18n.js";

const session = { csrf: null, onExpired: null };

export function setCsrf(token) { session.csrf = token; }
export function onExpired(fn) { session.onExpired = fn; }

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "error";
    this.body = body || {};
  }
}

export async function request(method, path, body, options = {}) {
  const headers = { Accept: options.accept || "application/json" };
  let payload;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, { detail: "network", code: "network" });
  }
  if (options.raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = { detail: text.slice(0, 200) }; } }
  if (response.status === 401 && !options.login && session.onExpired) session.onExpired();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, options) => request("GET", path, undefined, options);
export const post = (path, body, options) => request("POST", path, body === undefined ? {} : body, options);
export const patch = (path, body) => request("PATCH", path, body);
export const put = (path, body) => request("PUT", path, body);
export const del = (path) => request("DELETE", path);

/** Query string from an object (arrays repeat the key; empty values are left out). */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of [value].flat()) search.append(key, String(v));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function errorText(err) {
  if (!(err instanceof ApiError)) return tr("error.generic", { detail: String(err && err.message ? err.message : err) });
  const body = err.body || {};
  const seconds = body.retry_after_s !== undefined ? Math.ceil(body.retry_after_s) : "";
  return t(`error.${err.code}`, { detail: body.detail, s: seconds }) || tr("error.generic", { detail: body.detail || err.message });
}
