/* One member: details, edit, suspend / re-activate, QR pass (PNG and a printable sheet with
 * name and expiry), erase (typing the id to confirm), face photos (each removable: withdrawn from
 * the centre and every station), and their recent entries. */
import { get, post, patch, del, qs, errorText } from "../api.js";
import { h, clear, field, download } from "../dom.js";
import { tr, dateTime } from "../i18n.js";
import { canAct, stationName } from "../state.js";
import { ask, badge, toast } from "../ui.js";
import { memberForm, validityText } from "../members_form.js";
import { EntryList } from "../entries.js";

const STATUS_TONE = { active: "good", suspended: "bad", pending: "warn" };

export async function mount(view, { id }) {
  let member;
  try {
    member = await get(`/api/v1/members/${encodeURIComponent(id)}`);
  } catch (err) {
    view.append(h("h1", {}, tr("members.title")), h("p", { className: "error" }, errorText(err)));
    return null;
  }
  const details = h("div");
  const actions = h("div", { className: "actions" });
  const passBox = h("div", { id: "pass-box" });
  const list = h("ul", { className: "entries", id: "member-entries" });
  const faces = h("div", { id: "member-templates" });
  const heading = h("h1");
  view.append(heading,
    h("div", { className: "grid2" },
      h("section", { className: "card" }, details, actions, passBox, faces),
      h("section", { className: "card", "aria-labelledby": "recent-h" }, h("h2", { id: "recent-h" }, tr("members.recent")), list)));

  function render() {
    clear(heading).append(member.name, " ", h("span", { className: "muted" }, member.member_id), " ",
      badge(tr(`status.${member.status}`), STATUS_TONE[member.status]));
    const row = (key, value) => [h("dt", {}, tr(key)), h("dd", {}, value)];
    clear(details).append(h("dl", { className: "kv", id: "member-details" },
      ...row("members.phone", member.phone || "–"),
      ...row("members.kind", member.kind ? tr(`kind.${member.kind}`) : "–"),
      ...row("members.employer", member.employer || "–"),
      ...row("members.groups", member.groups.join("、") || "–"),
      ...row("members.validity", validityText(member)),
      ...row("members.home", member.home_station_id ? stationName(member.home_station_id) : tr("members.no_home")),
      ...row("members.faces_label", member.templates ? tr("members.faces", { n: member.templates }) : tr("members.qr_only")),
      ...row("members.consent_face", member.consent_face ? tr("common.yes") : tr("common.no")),
      ...row("members.consent_cross", member.consent_cross_station ? tr("common.yes") : tr("common.no")),
    ));
    clear(actions);
    if (!canAct()) return;
    actions.append(
      h("button", { type: "button", id: "member-edit", onclick: edit }, tr("common.edit")),
      member.status === "active"
        ? h("button", { type: "button", id: "member-suspend", onclick: () => setStatus("suspend") }, tr("members.suspend"))
        : h("button", { type: "button", id: "member-activate", onclick: () => setStatus("activate") }, tr("members.activate")),
      h("button", { type: "button", id: "member-pass", className: "primary", onclick: issuePass, disabled: member.status !== "active" }, tr("pass.issue")),
      h("button", { type: "button", id: "member-erase", className: "danger", onclick: erase }, tr("members.erase")));
  }

  async function edit() {
    const form = memberForm(member);
    const saved = await ask({
      title: tr("members.edit_title", { name: member.name }),
      body: [form.element],
      ok: tr("common.save"),
      action: async () => {
        const changes = form.values(true);
        if (!Object.keys(changes).length) return;
        try { member = await patch(`/api/v1/members/${encodeURIComponent(member.member_id)}`, changes); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (saved) { toast(tr("common.saved")); render(); }
  }

  async function setStatus(action) {
    const reason = h("input", { id: "status-reason", maxlength: "200", autocomplete: "off" });
    const done = await ask({
      title: tr(`members.${action}_title`, { name: member.name }),
      body: [field(tr("members.reason"), reason)],
      ok: tr(`members.${action}`),
      danger: action === "suspend",
      action: async () => {
        try {
          member = await post(`/api/v1/members/${encodeURIComponent(member.member_id)}/${action}`, { reason: reason.value.trim() || null });
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) { toast(tr(`members.${action}_done`, { name: member.name })); render(); }
  }

  async function erase() {
    const confirmInput = h("input", { id: "erase-confirm", maxlength: "64", autocomplete: "off", spellcheck: "false" });
    const why = h("select", { id: "erase-reason" }, ["member_request", "consent_withdrawn", "staff"].map((r) => h("option", { value: r }, tr(`erase.${r}`))));
    const done = await ask({
      title: tr("erase.title", { name: member.name }),
      body: [h("p", {}, tr("erase.warning")), field(tr("erase.reason"), why), field(tr("erase.type_id", { id: member.member_id }), confirmInput)],
      ok: tr("members.erase"),
      danger: true,
      action: async () => {
        if (confirmInput.value.trim() !== member.member_id) throw new Error(tr("erase.mismatch"));
        try {
          await post(`/api/v1/members/${encodeURIComponent(member.member_id)}/erase`, { confirm: member.member_id, reason: why.value });
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) { toast(tr("erase.done", { id: member.member_id })); location.hash = "#/members"; }
  }

  async function issuePass() {
    const days = h("input", { id: "pass-days", type: "number", min: "1", max: "1827", value: "365", inputmode: "numeric" });
    let pass = null;
    const done = await ask({
      title: tr("pass.title", { name: member.name }),
      body: [h("p", { className: "muted" }, tr("pass.help")), field(tr("pass.days"), days)],
      ok: tr("pass.issue"),
      action: async () => {
        try {
          pass = await post(`/api/v1/members/${encodeURIComponent(member.member_id)}/passes`, { valid_days: Number(days.value) || 365 });
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done && pass) showPass(pass);
  }

  function showPass(pass) {
    const src = `data:image/png;base64,${pass.png_base64}`;
    const expires = dateTime(pass.expires_at, null);
    const png = () => {
      const bytes = Uint8Array.from(atob(pass.png_base64), (c) => c.charCodeAt(0));
      download(new Blob([bytes], { type: "image/png" }), `pass-${pass.member_id}.png`);
    };
    const print = () => {
      const area = clear(document.getElementById("print-area"));
      area.append(h("div", { className: "sheet" },
        h("h1", {}, tr("pass.sheet_title")),
        h("div", { className: "name" }, pass.name),
        h("img", { src, alt: tr("pass.qr_alt", { name: pass.name }) }),
        h("div", { className: "line" }, tr("pass.member_id", { id: pass.member_id })),
        h("div", { className: "line" }, tr("pass.expires", { when: expires })),
        h("div", { className: "small" }, tr("pass.sheet_note"))));
      window.print();
    };
    clear(passBox).append(
      h("h2", {}, tr("pass.issued")),
      h("div", { className: "qr-preview" },
        h("img", { id: "pass-image", src, alt: tr("pass.qr_alt", { name: pass.name }) }),
        h("div", {},
          h("p", { id: "pass-expiry" }, tr("pass.expires", { when: expires })),
          h("div", { className: "actions" },
            h("button", { type: "button", id: "pass-download", onclick: png }, tr("pass.download")),
            h("button", { type: "button", id: "pass-print", className: "primary", onclick: print }, tr("pass.print"))))));
  }

  /* The member's face photos (templates) at the centre: when, where enrolled, where they may go.
   * Removing one (a photo of the wrong person) deletes it here and at every station holding it. */
  async function loadFaces() {
    let rows;
    try {
      rows = await get(`/api/v1/members/${encodeURIComponent(member.member_id)}/templates`);
    } catch (err) { clear(faces).append(h("p", { className: "error" }, errorText(err))); return; }
    clear(faces);
    if (!rows.length) return;
    faces.append(h("h2", {}, tr("templates.title")), h("ul", { className: "plain" }, ...rows.map((t) => h("li", { dataset: { template: t.template_id } },
      `${dateTime(t.created_at, null)} · ${t.origin_station_id ? stationName(t.origin_station_id) : tr("templates.no_origin")} · `,
      tr(t.scope === "fleet" && t.at_centre ? "templates.fleet" : "templates.station"), " ",
      canAct() ? h("button", { type: "button", className: "small danger", onclick: () => removeFace(t) }, tr("templates.remove")) : ""))));
  }

  async function removeFace(template) {
    const done = await ask({
      title: tr("templates.remove_title", { name: member.name }),
      body: [h("p", {}, tr("templates.remove_help"))],
      ok: tr("templates.remove"),
      danger: true,
      action: async () => {
        try {
          await del(`/api/v1/members/${encodeURIComponent(member.member_id)}/templates/${encodeURIComponent(template.template_id)}`);
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (!done) return;
    toast(tr("templates.removed"));
    try { member = await get(`/api/v1/members/${encodeURIComponent(member.member_id)}`); } catch (err) { /* shown on the next load */ }
    render();
    await loadFaces();
  }

  render();
  await loadFaces();
  try {
    const events = await get(`/api/v1/events${qs({ member_id: member.member_id, limit: 50 })}`);
    new EntryList(list, 50).replace(events);
    if (!events.length) list.append(h("li", { className: "muted" }, tr("live.none")));
  } catch (err) { list.append(h("li", { className: "error" }, errorText(err))); }
  return null;
}
