/* One access event as a card: snapshot thumbnail, who, what, where, when. Shared by the live
 * view and the station page. Keyed by event id (data-event), so a replayed event replaces itself. */
import { h } from "./dom.js";
import { tr, kind, method, reason, dateTime } from "./i18n.js";
import { stationName, stationZone } from "./state.js";

export function thumb(event) {
  if (event.snapshot_url) {
    return h("a", { href: event.snapshot_url, target: "_blank", rel: "noopener", "aria-label": tr("entries.open_photo") },
      h("img", { className: "thumb", src: `${event.snapshot_url}?size=thumb`, alt: tr("entries.photo_of", { who: who(event) }), loading: "lazy" }));
  }
  const text = event.snapshot_state === "pending" ? tr("entries.photo_pending")
    : event.snapshot_state === "expired" ? tr("entries.photo_expired") : tr("entries.no_photo");
  return h("div", { className: "thumb none" }, text);
}

/* Kinds about a person at the door: without a member, that person was not identified. Every other
 * kind (the station starting or stopping, a door alarm, the camera, the disk, the clock, an
 * installer's action) is about the station itself and is captioned so, never "unidentified". */
const PERSON_KINDS = new Set(["entry", "refused", "ignored", "exit", "lockout"]);
const CREDENTIALS = new Set(["face", "qr", "qr_face"]);

export function who(event) {
  if (event.member_name) return event.member_name;
  if (event.member_id) return tr("entries.member_id", { id: event.member_id });
  if (!PERSON_KINDS.has(event.kind)) {
    const by = event.details && typeof event.details.by === "string" ? event.details.by : null;
    return by ? tr("entries.by", { by }) : tr("entries.station_itself");
  }
  // The exit button, a remote opening: nobody was to be identified; say how instead.
  if (event.method && !CREDENTIALS.has(event.method)) return method(event.method);
  return tr("entries.nobody");
}

export function entryCard(event, fresh = false) {
  const parts = [kind(event.kind)];
  if (event.method) parts.push(method(event.method));
  if (event.reason) parts.push(reason(event.reason));
  const station = event.station_name || stationName(event.station_id);
  return h("li", {
    className: `entry${fresh ? " fresh" : ""}`,
    dataset: { event: event.id, kind: event.kind, granted: String(Boolean(event.granted)), station: event.station_id },
  },
  thumb(event),
  h("div", { className: "lines" },
    h("span", { className: "who" }, who(event)),
    h("span", { className: "what" }, parts.join(" · ")),
    h("span", { className: "meta" }, h("a", { href: `#/stations/${encodeURIComponent(event.station_id)}` }, station),
      " · ", dateTime(event.ts, stationZone(event.station_id))),
  ));
}

/** A list of entry cards kept newest first, at most `max`, one card per event id. */
export class EntryList {
  constructor(element, max = 200) {
    this.el = element;
    this.max = max;
    this.items = new Map();
  }

  replace(events) {
    this.el.replaceChildren();
    this.items.clear();
    for (const event of events) this.add(event, false, true);
  }

  add(event, fresh = true, append = false) {
    const card = entryCard(event, fresh);
    const old = this.items.get(event.id);
    this.items.set(event.id, { event, card });
    if (old) { old.card.replaceWith(card); return; }
    if (append) { this.el.append(card); } else {
      // Keep station-time order: a late event from an offline station goes where it belongs.
      const later = [...this.el.children].find((c) => {
        const other = this.items.get(c.dataset.event);
        return other && other.event.ts < event.ts;
      });
      this.el.insertBefore(card, later || null);
    }
    while (this.el.children.length > this.max) {
      const last = this.el.lastElementChild;
      this.items.delete(last.dataset.event);
      last.remove();
    }
  }

  snapshot(data) {
    const item = this.items.get(data.event_id);
    if (!item) return;
    this.add({ ...item.event, snapshot_state: "ok", snapshot_url: data.snapshot_url }, false);
  }
}
