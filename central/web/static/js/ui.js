/* Toasts and the one modal dialog (native <dialog>: focus trapped, Esc closes, keyboard usable). */
import { $, clear, append, h } from "./dom.js";
import { tr } from "./i18n.js";

export function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

/**
 * Ask in a dialog. `body` is DOM (e.g. a note field); `action(form)` runs on OK and may throw an
 * Error whose message is shown in the dialog (the dialog stays open). Resolves true when done.
 */
export function ask({ title, body, ok, danger = false, action }) {
  const dialog = $("dialog");
  $("dialog-title").textContent = title;
  clear($("dialog-body"));
  append($("dialog-body"), body || []);
  $("dialog-error").textContent = "";
  const okButton = $("dialog-ok");
  okButton.textContent = ok || tr("common.ok");
  okButton.className = danger ? "danger" : "primary";
  okButton.disabled = false;
  return new Promise((resolve) => {
    const form = $("dialog-form");
    const finish = (value) => {
      form.onsubmit = null;
      $("dialog-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    form.onsubmit = async (e) => {
      e.preventDefault();
      okButton.disabled = true;
      try {
        if (action) await action(form);
        finish(true);
      } catch (err) {
        $("dialog-error").textContent = err.message || String(err);
        okButton.disabled = false;
      }
    };
    $("dialog-cancel").onclick = () => finish(false);
    dialog.onclose = () => resolve(false);
    dialog.showModal();
    const first = $("dialog-body").querySelector("input, textarea, select");
    (first || okButton).focus();
  });
}

/** A status badge: tone is good | warn | bad | (neutral). */
export function badge(text, tone) {
  return h("span", { className: `badge${tone ? " " + tone : ""}` }, text);
}
