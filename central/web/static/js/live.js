/* The live feed: one EventSource on /api/v1/live for the whole page. Views subscribe to topics
 * (event, snapshot, alarm, status, result, command, resync). The browser reconnects by itself
 * and sends the last id back, so the centre replays what was missed; entries are keyed by event
 * id, so a replayed one is never shown twice. */
import { $ } from "./dom.js";
import { tr } from "./i18n.js";

const TOPICS = ["event", "snapshot", "alarm", "status", "result", "command", "resync", "logout"];
const handlers = new Map(TOPICS.map((topic) => [topic, new Set()]));
let source = null;
let onLogout = null;

export function on(topic, fn) {
  handlers.get(topic).add(fn);
  return () => handlers.get(topic).delete(fn);
}

function emit(topic, data) {
  for (const fn of handlers.get(topic)) {
    try { fn(data); } catch (e) { console.warn("live handler failed", topic, e); }
  }
}

function showState(state) {
  const el = $("live-state");
  el.hidden = false;
  el.dataset.state = state;
  el.textContent = tr(`live.${state}`);
}

export function start(logoutHandler) {
  stop();
  onLogout = logoutHandler;
  source = new EventSource("/api/v1/live");
  source.onopen = () => { showState("up"); emit("resync", { reason: "open" }); };
  source.onerror = () => {
    showState("down");
    if (source && source.readyState === EventSource.CLOSED) {
      // A refusal (e.g. the login ended) closes the stream for good: check and maybe log out.
      setTimeout(() => onLogout && onLogout(), 500);
    }
  };
  for (const topic of TOPICS) {
    source.addEventListener(topic, (message) => {
      let data = null;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (topic === "logout") { stop(); if (onLogout) onLogout(); return; }
      emit(topic, data);
    });
  }
}

export function stop() {
  if (source) source.close();
  source = null;
  $("live-state").hidden = true;
}

export const connected = () => source !== null && source.readyState === EventSource.OPEN;
