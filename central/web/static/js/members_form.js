/* The member form (create and edit share it): name, phone, kind, employer, groups, validity,
 * home station, consents. Dates are whole days: validity runs from the start of the first day to
 * the end of the last, in the browser's time zone. */
import { h, field } from "./dom.js";
import { tr } from "./i18n.js";
import { app } from "./state.js";

export const KINDS = ["courier", "rider", "sanitation", "driver", "other"];

const toDate = (iso) => (iso ? new Date(iso).toLocaleDateString("en-CA") : "");
function fromDate(value, endOfDay) {
  if (!value) return null;
  const d = new Date(`${value}T${endOfDay ? "23:59:59" : "00:00:00"}`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function memberForm(member = {}) {
  const inputs = {
    name: h("input", { name: "name", maxlength: "100", autocomplete: "off", required: true, value: member.name || "" }),
    phone: h("input", { name: "phone", type: "tel", maxlength: "32", autocomplete: "off", value: member.phone || "" }),
    kind: h("select", { name: "kind" }, h("option", { value: "" }, tr("kind.none")),
      KINDS.map((k) => h("option", { value: k, selected: member.kind === k }, tr(`kind.${k}`)))),
    employer: h("input", { name: "employer", maxlength: "200", autocomplete: "off", value: member.employer || "" }),
    groups: h("input", { name: "groups", maxlength: "500", autocomplete: "off", value: (member.groups || []).join(", "),
      placeholder: tr("members.groups_hint") }),
    valid_from: h("input", { name: "valid_from", type: "date", value: toDate(member.valid_from) }),
    valid_until: h("input", { name: "valid_until", type: "date", value: toDate(member.valid_until) }),
    home_station_id: h("select", { name: "home_station_id" },
      h("option", { value: "" }, tr("members.no_home")),
      [...app.stations.values()].map((s) => h("option", { value: s.station_id, selected: member.home_station_id === s.station_id },
        `${s.name} (${s.station_id})`))),
    consent_face: h("input", { name: "consent_face", type: "checkbox", checked: Boolean(member.consent_face) }),
    consent_cross_station: h("input", { name: "consent_cross_station", type: "checkbox", checked: Boolean(member.consent_cross_station) }),
  };
  const element = h("div", {},
    h("div", { className: "form-grid" },
      field(tr("members.name"), inputs.name),
      field(tr("members.phone"), inputs.phone),
      field(tr("members.kind"), inputs.kind),
      field(tr("members.employer"), inputs.employer),
      field(tr("members.groups"), inputs.groups),
      field(tr("members.home"), inputs.home_station_id),
      field(tr("members.valid_from"), inputs.valid_from),
      field(tr("members.valid_until"), inputs.valid_until)),
    h("label", { className: "check" }, inputs.consent_face, h("span", {}, tr("members.consent_face"))),
    member.consent_face ? h("p", { className: "muted" }, tr("members.withdraw_face")) : null,
    h("label", { className: "check" }, inputs.consent_cross_station, h("span", {}, tr("members.consent_cross"))));

  /** The fields as the API wants them; only what differs from `member` when `changedOnly`. */
  function values(changedOnly) {
    const groups = inputs.groups.value.split(/[,，、\s]+/).map((g) => g.trim()).filter(Boolean);
    const out = {
      name: inputs.name.value.trim(),
      phone: inputs.phone.value.trim() || null,
      kind: inputs.kind.value || null,
      employer: inputs.employer.value.trim() || null,
      groups,
      valid_from: fromDate(inputs.valid_from.value, false),
      valid_until: fromDate(inputs.valid_until.value, true),
      home_station_id: inputs.home_station_id.value || null,
      consent_face: inputs.consent_face.checked,
      consent_cross_station: inputs.consent_cross_station.checked,
    };
    if (!out.name) throw new Error(tr("members.name_required"));
    if (out.valid_from === undefined || out.valid_until === undefined) throw new Error(tr("members.bad_date"));
    if (out.consent_cross_station && !out.consent_face) throw new Error(tr("members.cross_needs_face"));
    if (!changedOnly) return out;
    const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const changes = {};
    for (const [key, value] of Object.entries(out)) {
      const before = key.startsWith("valid_") ? (member[key] ? fromDate(toDate(member[key]), key === "valid_until") : null) : member[key];
      if (!same(value, before)) changes[key] = value;
    }
    return changes;
  }
  return { element, values, inputs };
}

export function validityText(member) {
  if (!member.valid_from && !member.valid_until) return tr("members.always");
  const fmt = (iso) => (iso ? new Date(iso).toLocaleDateString(document.documentElement.lang) : "…");
  return tr("members.valid", { from: fmt(member.valid_from), until: fmt(member.valid_until) });
}
