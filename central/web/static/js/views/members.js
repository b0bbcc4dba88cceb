/* Members: search by name, id or phone; create (staff who may act). */
import { get, post, qs, errorText } from "../api.js";
import { h, debounce } from "../dom.js";
import { tr } from "../i18n.js";
import { canAct } from "../state.js";
import { ask, badge, toast } from "../ui.js";
import { memberForm, validityText } from "../members_form.js";

const STATUS_TONE = { active: "good", suspended: "bad", pending: "warn" };

export async function mount(view) {
  const search = h("input", { type: "search", id: "member-search", autocomplete: "off", maxlength: "100", placeholder: tr("members.search") });
  const status = h("select", { id: "member-status" }, h("option", { value: "" }, tr("members.all")),
    ["active", "suspended", "pending"].map((s) => h("option", { value: s }, tr(`status.${s}`))));
  const body = h("tbody");
  const info = h("p", { className: "muted", role: "status", id: "member-count" });
  const add = canAct() ? h("button", { type: "button", className: "primary", id: "member-add", onclick: create }, tr("members.add")) : null;
  view.append(
    h("h1", {}, tr("members.title")),
    h("div", { className: "filters" },
      h("label", { htmlFor: "member-search", className: "visually-hidden" }, tr("members.search")), search,
      h("label", { htmlFor: "member-status", className: "visually-hidden" }, tr("members.status_filter")), status, add),
    info,
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "member-table" },
      h("thead", {}, h("tr", {}, ...["name", "id", "phone", "kind", "groups", "validity", "status", "faces"]
        .map((c) => h("th", { scope: "col" }, tr(`members.col.${c}`))))), body)));

  async function load() {
    try {
      const members = await get(`/api/v1/members${qs({ search: search.value.trim(), status: status.value, limit: 200 })}`);
      body.replaceChildren(...members.map((m) => {
        const cell = (label, ...content) => h("td", { "data-label": tr(`members.col.${label}`) }, ...content);
        return h("tr", { dataset: { member: m.member_id } },
          cell("name", h("a", { href: `#/members/${encodeURIComponent(m.member_id)}` }, m.name)),
          cell("id", m.member_id),
          cell("phone", m.phone || "–"),
          cell("kind", m.kind ? tr(`kind.${m.kind}`) : "–"),
          cell("groups", m.groups.join("、") || "–"),
          cell("validity", validityText(m)),
          cell("status", badge(tr(`status.${m.status}`), STATUS_TONE[m.status])),
          cell("faces", m.templates ? tr("members.faces", { n: m.templates }) : tr("members.qr_only")));
      }));
      info.textContent = members.length ? tr("members.count", { n: members.length }) : tr("members.none");
    } catch (err) { info.textContent = errorText(err); }
  }

  async function create() {
    const form = memberForm({});
    let created = null;
    const done = await ask({
      title: tr("members.add"),
      body: [form.element],
      ok: tr("members.create"),
      action: async () => {
        const values = form.values(false);
        try { created = await post("/api/v1/members", values); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done && created) {
      toast(tr("members.created", { name: created.name }));
      location.hash = `#/members/${encodeURIComponent(created.member_id)}`;
    }
  }

  search.oninput = debounce(load, 250);
  status.onchange = load;
  await load();
  return null;
}
