/* Staff accounts (admins only): create with a one-time secret, change role and district,
 * disable, reset the secret; districts. The server enforces all of it; this only asks. */
import { get, post, patch, put, errorText } from "../api.js";
import { h, field } from "../dom.js";
import { tr, dateTime } from "../i18n.js";
import { app } from "../state.js";
import { ask, badge, toast } from "../ui.js";

const ROLES = ["admin", "district", "viewer"];

export async function mount(view) {
  const body = h("tbody");
  const status = h("p", { className: "muted", role: "status" });
  const districtList = h("ul", { id: "district-list" });
  view.append(
    h("h1", {}, tr("staff.title")),
    h("div", { className: "filters" },
      h("button", { type: "button", className: "primary", id: "staff-add", onclick: create }, tr("staff.add")),
      h("button", { type: "button", id: "district-add", onclick: addDistrict }, tr("staff.add_district"))),
    status,
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "staff-table" },
      h("thead", {}, h("tr", {}, ...["username", "name", "role", "district", "state", "last_login", "actions"]
        .map((c) => h("th", { scope: "col" }, tr(`staff.col.${c}`))))), body)),
    h("section", { className: "card" }, h("h2", {}, tr("staff.districts")), districtList));
  let districts = [];

  function roleFields(account) {
    const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r, selected: account.role === r }, tr(`role.${r}`))));
    const district = h("select", { name: "district" }, h("option", { value: "" }, tr("staff.no_district")),
      districts.map((d) => h("option", { value: d.district_id, selected: account.district_id === d.district_id }, `${d.name} (${d.district_id})`)));
    return { role, district, element: [field(tr("staff.role"), role), field(tr("staff.district"), district), h("p", { className: "muted" }, tr("staff.role_help"))] };
  }

  async function showSecret(account) {
    await ask({
      title: tr("staff.secret_title", { name: account.username }),
      body: [h("p", {}, tr("staff.secret_once")), h("p", { className: "secret", id: "staff-secret" }, account.secret)],
      ok: tr("staff.secret_noted"),
    });
  }

  async function create() {
    const username = h("input", { name: "username", maxlength: "32", autocomplete: "off", spellcheck: "false", autocapitalize: "none" });
    const display = h("input", { name: "display_name", maxlength: "100", autocomplete: "off" });
    const roles = roleFields({ role: "district" });
    let account = null;
    const done = await ask({
      title: tr("staff.add"),
      body: [field(tr("staff.username"), username), field(tr("staff.name"), display), ...roles.element],
      ok: tr("staff.create"),
      action: async () => {
        try {
          account = await post("/api/v1/staff", { username: username.value.trim(), display_name: display.value.trim(),
            role: roles.role.value, district_id: roles.district.value || null });
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done && account) { await showSecret(account); await load(); }
  }

  async function change(account) {
    const roles = roleFields(account);
    const display = h("input", { name: "display_name", maxlength: "100", value: account.display_name });
    const done = await ask({
      title: tr("staff.edit_title", { name: account.username }),
      body: [field(tr("staff.name"), display), ...roles.element],
      ok: tr("common.save"),
      action: async () => {
        try {
          await patch(`/api/v1/staff/${encodeURIComponent(account.username)}`, { role: roles.role.value,
            district_id: roles.district.value || null, display_name: display.value.trim() });
        } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) { toast(tr("common.saved")); await load(); }
  }

  async function toggle(account) {
    const done = await ask({
      title: tr(account.active ? "staff.disable_title" : "staff.enable_title", { name: account.username }),
      body: [h("p", {}, tr(account.active ? "staff.disable_help" : "staff.enable_help"))],
      ok: tr(account.active ? "staff.disable" : "staff.enable"),
      danger: account.active,
      action: async () => {
        try { await patch(`/api/v1/staff/${encodeURIComponent(account.username)}`, { active: !account.active }); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) await load();
  }

  async function reset(account) {
    let fresh = null;
    const done = await ask({
      title: tr("staff.reset_title", { name: account.username }),
      body: [h("p", {}, tr("staff.reset_help"))],
      ok: tr("staff.reset"),
      danger: true,
      action: async () => {
        try { fresh = await post(`/api/v1/staff/${encodeURIComponent(account.username)}/reset`); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done && fresh) await showSecret(fresh);
  }

  async function addDistrict() {
    const id = h("input", { maxlength: "64", autocomplete: "off", spellcheck: "false", autocapitalize: "none" });
    const name = h("input", { maxlength: "200", autocomplete: "off" });
    const done = await ask({
      title: tr("staff.add_district"),
      body: [field(tr("staff.district_id"), id), field(tr("staff.district_name"), name)],
      ok: tr("common.save"),
      action: async () => {
        try { await post("/api/v1/districts", { district_id: id.value.trim(), name: name.value.trim() }); } catch (err) { throw new Error(errorText(err)); }
      },
    });
    if (done) await load();
  }

  /* Phone registrations in this district: active at once once the SMS code confirmed the number,
   * or waiting for staff (the API's `PUT /api/v1/districts/{id}/registration`, audited). */
  function approvalControl(district) {
    const select = h("select", { name: "registration_approval", "aria-label": tr("staff.approval_label", { name: district.name }) },
      ["staff", "auto"].map((rule) => h("option", { value: rule, selected: district.registration_approval === rule }, tr(`staff.approval.${rule}`))));
    select.addEventListener("change", async () => {
      const rule = select.value;
      select.disabled = true;
      try {
        await put(`/api/v1/districts/${encodeURIComponent(district.district_id)}/registration`, { approval: rule });
        district.registration_approval = rule;
        toast(tr("common.saved"));
      } catch (err) {
        select.value = district.registration_approval;
        status.textContent = errorText(err);
      } finally { select.disabled = false; }
    });
    return h("label", { className: "inline" }, tr("staff.approval_title"), " ", select);
  }

  async function load() {
    try {
      const [accounts, list] = await Promise.all([get("/api/v1/staff"), get("/api/v1/districts")]);
      districts = list;
      districtList.replaceChildren(...list.map((d) => h("li", { dataset: { district: d.district_id } },
        `${d.name} (${d.district_id}) · ${tr("staff.stations", { n: d.stations })} · `, approvalControl(d))));
      body.replaceChildren(...accounts.map((a) => {
        const cell = (label, ...content) => h("td", { "data-label": tr(`staff.col.${label}`) }, ...content);
        const self = a.username === app.me.username;
        return h("tr", { dataset: { staff: a.username } },
          cell("username", a.username),
          cell("name", a.display_name || "–"),
          cell("role", tr(`role.${a.role}`)),
          cell("district", a.district_id || tr("staff.all_districts")),
          cell("state", a.active ? badge(tr("staff.active"), "good") : badge(tr("staff.disabled"), "bad")),
          cell("last_login", a.last_login_at ? dateTime(a.last_login_at, null) : tr("common.never")),
          cell("actions",
            h("button", { type: "button", className: "small", onclick: () => change(a), disabled: self }, tr("common.edit")), " ",
            h("button", { type: "button", className: "small", onclick: () => toggle(a), disabled: self }, tr(a.active ? "staff.disable" : "staff.enable")), " ",
            h("button", { type: "button", className: "small", onclick: () => reset(a) }, tr("staff.reset"))));
      }));
      status.textContent = tr("staff.count", { n: accounts.length });
    } catch (err) { status.textContent = errorText(err); }
  }
  await load();
  return null;
}
