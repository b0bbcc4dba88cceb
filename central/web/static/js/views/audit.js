/* The audit log: who did what, newest first, with filters and paging back. */
import { get, qs, errorText } from "../api.js";
import { h } from "../dom.js";
import { tr, dateTime } from "../i18n.js";

export async function mount(view) {
  const action = h("input", { id: "audit-action", maxlength: "64", autocomplete: "off", placeholder: tr("audit.action_hint") });
  const actor = h("input", { id: "audit-actor", maxlength: "100", autocomplete: "off", placeholder: tr("audit.actor_hint") });
  const body = h("tbody");
  const more = h("button", { type: "button", id: "audit-more", hidden: true }, tr("common.more"));
  const status = h("p", { className: "muted", role: "status" });
  view.append(
    h("h1", {}, tr("audit.title")),
    h("div", { className: "filters" },
      h("label", { htmlFor: "audit-action", className: "visually-hidden" }, tr("audit.action_hint")), action,
      h("label", { htmlFor: "audit-actor", className: "visually-hidden" }, tr("audit.actor_hint")), actor),
    status,
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "audit-table" },
      h("thead", {}, h("tr", {}, ...["at", "actor", "action", "target", "district", "client", "details"]
        .map((c) => h("th", { scope: "col" }, tr(`audit.col.${c}`))))), body)),
    more);
  let lastId = null;

  function row(entry) {
    const cell = (label, ...content) => h("td", { "data-label": tr(`audit.col.${label}`) }, ...content);
    const details = Object.entries(entry.details || {}).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; ");
    return h("tr", { dataset: { audit: String(entry.id), action: entry.action } },
      cell("at", dateTime(entry.at, null)),
      cell("actor", entry.actor),
      cell("action", tr(`action.${entry.action}`, null, entry.action)),
      cell("target", [entry.target_type ? tr(`target.${entry.target_type}`, null, entry.target_type) : "", entry.target_id || ""].join(" ").trim() || "–"),
      cell("district", entry.district_id || "–"),
      cell("client", entry.client || "–"),
      cell("details", details || "–"));
  }

  async function load(append) {
    const params = { limit: 100, action: action.value.trim(), actor: actor.value.trim(), before_id: append ? lastId : undefined };
    try {
      const entries = await get(`/api/v1/audit${qs(params)}`);
      if (!append) body.replaceChildren();
      body.append(...entries.map(row));
      lastId = entries.length ? entries[entries.length - 1].id : lastId;
      more.hidden = entries.length < 100;
      status.textContent = body.children.length ? "" : tr("audit.none");
    } catch (err) { status.textContent = errorText(err); }
  }
  action.onchange = () => load(false);
  actor.onchange = () => load(false);
  more.onclick = () => load(true);
  await load(false);
  return null;
}
