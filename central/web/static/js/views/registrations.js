/* Phone registrations waiting for staff (issue 11): a worker registered by scanning a station's
 * poster in a district that approves by hand, or with no SMS gateway configured. Approving makes
 * the member active and sends them to every station they may enter (the roster); rejecting
 * deletes what they typed. Only staff who may act see the buttons; every decision is audited. */
import { get, post, errorText } from "../api.js";
import { h } from "../dom.js";
import { tr, dateTime } from "../i18n.js";
import { canAct, stationName, stationZone } from "../state.js";
import { ask, toast } from "../ui.js";

export async function mount(view) {
  const body = h("tbody");
  const info = h("p", { className: "muted", role: "status", id: "registration-count" });
  view.append(
    h("h1", {}, tr("registrations.title")),
    h("p", { className: "muted" }, tr("registrations.help")),
    info,
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "registration-table" },
      h("thead", {}, h("tr", {}, ...["when", "name", "phone", "kind", "employer", "station", "sms", "actions"]
        .map((c) => h("th", { scope: "col" }, tr(`registrations.col.${c}`))))), body)));

  async function decide(reg, approve) {
    const note = h("input", { id: "registration-note", maxlength: "200", autocomplete: "off" });
    const done = await ask({
      title: tr(approve ? "registrations.approve" : "registrations.reject"),
      body: [h("p", {}, tr(approve ? "registrations.approve_confirm" : "registrations.reject_confirm", { name: reg.name || reg.phone || "" })),
        h("label", {}, tr("registrations.note"), note)],
      ok: tr(approve ? "registrations.approve" : "registrations.reject"),
      danger: !approve,
      action: async () => {
        const path = `/api/v1/registrations/${encodeURIComponent(reg.registration_id)}/${approve ? "approve" : "reject"}`;
        try { await post(path, { note: note.value.trim() || null }); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) { toast(tr(approve ? "registrations.approved" : "registrations.rejected")); await load(); }
  }

  async function load() {
    try {
      const rows = await get("/api/v1/registrations");
      body.replaceChildren(...rows.map((r) => {
        const cell = (label, ...content) => h("td", { "data-label": tr(`registrations.col.${label}`) }, ...content);
        const actions = canAct() ? [
          h("button", { type: "button", className: "primary", dataset: { approve: r.registration_id }, onclick: () => decide(r, true) }, tr("registrations.approve")),
          " ",
          h("button", { type: "button", className: "danger", dataset: { reject: r.registration_id }, onclick: () => decide(r, false) }, tr("registrations.reject")),
        ] : ["–"];
        return h("tr", { dataset: { registration: r.registration_id } },
          cell("when", dateTime(r.created_at, r.station_id ? stationZone(r.station_id) : "Asia/Shanghai")),
          cell("name", r.name || "–"),
          cell("phone", r.phone || "–"),
          cell("kind", r.kind ? tr(`kind.${r.kind}`) : "–"),
          cell("employer", r.employer || "–"),
          cell("station", r.station_id ? stationName(r.station_id) : "–"),
          cell("sms", tr(r.verified_phone ? "registrations.sms_checked" : "registrations.sms_unchecked")),
          cell("actions", ...actions));
      }));
      info.textContent = rows.length ? tr("registrations.count", { n: rows.length }) : tr("registrations.none");
    } catch (err) { info.textContent = errorText(err); }
  }

  await load();
  return null;
}
