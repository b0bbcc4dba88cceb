/* One's own account: who, which role and district, and changing the password. */
import { post, errorText } from "../api.js";
import { h, field } from "../dom.js";
import { tr } from "../i18n.js";
import { app } from "../state.js";

export async function mount(view) {
  const current = h("input", { type: "password", id: "pw-current", autocomplete: "current-password", maxlength: "256" });
  const fresh = h("input", { type: "password", id: "pw-new", autocomplete: "new-password", minlength: "10", maxlength: "256" });
  const result = h("p", { role: "status", id: "pw-result" });
  const form = h("form", { className: "card", novalidate: true },
    h("h2", {}, tr("account.password")), field(tr("account.current"), current), field(tr("account.new"), fresh),
    h("button", { type: "submit", className: "primary" }, tr("account.change")), result);
  form.onsubmit = async (e) => {
    e.preventDefault();
    result.className = "";
    try {
      await post("/api/v1/auth/password", { current_password: current.value, new_password: fresh.value });
      result.className = "ok-text";
      result.textContent = tr("account.changed");
      current.value = "";
      fresh.value = "";
    } catch (err) { result.className = "error"; result.textContent = errorText(err); }
  };
  view.append(h("h1", {}, tr("account.title")),
    h("section", { className: "card" }, h("dl", { className: "kv" },
      h("dt", {}, tr("staff.username")), h("dd", {}, app.me.username),
      h("dt", {}, tr("staff.role")), h("dd", {}, tr(`role.${app.me.role}`)),
      h("dt", {}, tr("staff.district")), h("dd", {}, app.me.district_id || tr("staff.all_districts")))),
    form);
  return null;
}
