/* Visits per station per day or week (station-local days) with ECharts, and the export to Excel
 * or CSV of exactly what is shown. */
import { get, qs, errorText } from "../api.js";
import { h, field, loadScript } from "../dom.js";
import { tr, lang, todayIn } from "../i18n.js";
import { app } from "../state.js";

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const shift = (iso, days) => {
  const d = new Date(`${iso}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
};

export async function mount(view) {
  const today = todayIn("Asia/Shanghai");
  const first = h("input", { type: "date", id: "visits-first", value: shift(today, -13) });
  const last = h("input", { type: "date", id: "visits-last", value: today });
  const period = h("select", { id: "visits-period" }, h("option", { value: "day" }, tr("visits.by_day")), h("option", { value: "week" }, tr("visits.by_week")));
  const station = h("select", { id: "visits-station" }, h("option", { value: "" }, tr("live.all_stations")),
    [...app.stations.values()].map((s) => h("option", { value: s.station_id }, `${s.name} (${s.station_id})`)));
  const xlsx = h("a", { className: "button", id: "export-xlsx", download: "" }, tr("visits.export_xlsx"));
  const csv = h("a", { className: "button", id: "export-csv", download: "" }, tr("visits.export_csv"));
  const status = h("p", { className: "muted", role: "status", id: "visits-status" });
  const trend = h("div", { className: "chart", id: "visits-trend", role: "img", "aria-label": tr("visits.trend") });
  const ranking = h("div", { className: "chart", id: "visits-ranking", role: "img", "aria-label": tr("visits.ranking") });
  const body = h("tbody");
  view.append(
    h("h1", {}, tr("visits.title")),
    h("div", { className: "toolbar" }, field(tr("visits.first"), first), field(tr("visits.last"), last),
      field(tr("visits.period"), period), field(tr("visits.station"), station), xlsx, csv),
    h("p", { className: "muted" }, tr("visits.local_days")),
    status,
    h("div", { className: "grid2" },
      h("section", { className: "card" }, h("h2", {}, tr("visits.trend")), trend),
      h("section", { className: "card" }, h("h2", {}, tr("visits.ranking")), ranking)),
    h("div", { className: "table-wrap" }, h("table", { className: "cards", id: "visits-table" },
      h("thead", {}, h("tr", {}, ...["station", "entries", "members", "refused", "emergencies"]
        .map((c) => h("th", { scope: "col", className: c === "station" ? "" : "num" }, tr(`visits.col.${c}`))))), body)));

  let charts = [];
  try {
    await loadScript("/dashboard/vendor/echarts/echarts.common.min.js");
    charts = [window.echarts.init(trend), window.echarts.init(ranking)];
  } catch (err) { status.textContent = errorText(err); }
  const resize = () => charts.forEach((c) => c.resize());
  window.addEventListener("resize", resize);

  function params() {
    return { first: first.value, last: last.value, period: period.value, station_id: station.value || undefined };
  }

  async function load() {
    const p = params();
    xlsx.href = `/api/v1/visits/export${qs({ ...p, format: "xlsx", lang: lang() })}`;
    csv.href = `/api/v1/visits/export${qs({ ...p, format: "csv", lang: lang() })}`;
    let data;
    try { data = await get(`/api/v1/visits${qs(p)}`); } catch (err) { status.textContent = errorText(err); return; }
    status.textContent = "";
    const names = new Map(data.stations.map((s) => [s.station_id, s.name]));
    const perPeriod = new Map(data.periods.map((d) => [d, 0]));
    const perStation = new Map(data.stations.map((s) => [s.station_id, { entries: 0, members: 0, refused: 0, emergencies: 0 }]));
    for (const row of data.rows) {
      perPeriod.set(row.period, (perPeriod.get(row.period) || 0) + row.entries);
      const total = perStation.get(row.station_id);
      if (total) for (const key of ["entries", "members", "refused", "emergencies"]) total[key] += row[key];
    }
    const ranked = [...perStation.entries()].sort((a, b) => b[1].entries - a[1].entries);
    body.replaceChildren(...ranked.map(([id, total]) => h("tr", { dataset: { station: id } },
      h("td", { "data-label": tr("visits.col.station") }, names.get(id), h("div", { className: "muted" }, id)),
      ...["entries", "members", "refused", "emergencies"].map((k) => h("td", { className: "num", "data-label": tr(`visits.col.${k}`) }, String(total[k]))))));
    if (!charts.length) return;
    const tooltip = {
      trigger: "axis",
      formatter: (items) => items.map((i) => `${escapeHtml(i.axisValueLabel)}: ${escapeHtml(i.value)}`).join("<br>"),
    };
    charts[0].setOption({
      animation: false,
      tooltip,
      grid: { left: 48, right: 16, top: 20, bottom: 40 },
      xAxis: { type: "category", data: data.periods },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: data.period === "day" ? "line" : "bar", name: tr("visits.col.entries"), data: [...perPeriod.values()], itemStyle: { color: "#0b6e4f" } }],
    }, true);
    const top = ranked.slice(0, 15).reverse();
    charts[1].setOption({
      animation: false,
      tooltip,
      grid: { left: 110, right: 16, top: 10, bottom: 30 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: top.map(([id]) => names.get(id) || id) },
      series: [{ type: "bar", name: tr("visits.col.entries"), data: top.map(([, t]) => t.entries), itemStyle: { color: "#2e90fa" } }],
    }, true);
    trend.dataset.total = String([...perPeriod.values()].reduce((a, b) => a + b, 0));
  }
  for (const input of [first, last, period, station]) input.onchange = load;
  await load();
  return () => { window.removeEventListener("resize", resize); charts.forEach((c) => c.dispose()); };
}
