// Charts (the original's Kibana role): live via QueryService/Subscribe,
// history via Aggregate buckets sized to the chart's width (avg line with a
// min–max band), raw readings when zoomed in, several sensors on one chart,
// and keyword/boolean sensors as a state timeline with a table.
import uPlot from "uplot";
import { core, errorText, numeric, queryApi, tsDate, valueText, type query } from "./api";
import { field, fmtTime, h, replace } from "./dom";

const COLORS = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#e67700", "#495057"];
const isNumeric = (s: core.Sensor) => s.valueType === core.ValueType.DOUBLE || s.valueType === core.ValueType.LONG;
/** Live mode keeps this much history and at most MAX_LIVE points per sensor. */
const LIVE_WINDOW_MS = 5 * 60_000;
const MAX_LIVE = 100_000;
/** Raw readings are drawn when a range holds at most this many per pixel of width. */
const RAW_PER_PX = 4;
/** The most raw readings fetched for one sensor (ListReadings pages of 10,000). */
const MAX_RAW = 100_000;

const ranges: [string, string, number][] = [
  ["live", "Live (last 5 min, streaming)", LIVE_WINDOW_MS],
  ["15m", "Last 15 minutes", 15 * 60_000],
  ["1h", "Last hour", 3_600_000],
  ["24h", "Last 24 hours", 86_400_000],
  ["7d", "Last 7 days", 7 * 86_400_000],
  ["custom", "Custom range", 0],
];

interface State {
  selected: Set<string>;
  range: string;
  from?: number;
  to?: number;
  raw: boolean;
}

/** Renders the chart panel for a device's sensors into el; stops on signal. */
export function sensorCharts(el: HTMLElement, sensors: core.Sensor[], signal: AbortSignal, opts: { title?: string; initial?: string[] } = {}): void {
  const title = h("h2", { id: "chart-title" }, opts.title ?? "Charts");
  if (!sensors.length) {
    replace(el, title, h("p", { class: "empty" }, "No sensors to chart yet."));
    return;
  }
  // Every numeric sensor (up to five) on one chart to start with.
  const first = sensors.filter(isNumeric).slice(0, 5);
  const state: State = { selected: new Set(opts.initial ?? (first.length ? first : sensors.slice(0, 1)).map((s) => String(s.id))), range: "live", raw: false };
  const checks = h(
    "fieldset",
    { class: "pick" },
    h("legend", null, "Sensors on the chart"),
    sensors.map((s) => {
      const cb = h("input", { type: "checkbox", name: "chart-sensor", value: String(s.id), checked: state.selected.has(String(s.id)) });
      cb.addEventListener("change", () => {
        if (cb.checked) state.selected.add(cb.value);
        else state.selected.delete(cb.value);
        void draw();
      });
      return h("label", { class: "check" }, cb, ` ${s.path ? s.path + "/" : ""}${s.name}`, h("small", null, ` (${s.valueType === core.ValueType.BOOLEAN ? "state" : s.valueType === core.ValueType.STRING ? "keyword" : s.unit || "number"})`));
    }),
  );
  const rangeSel = h("select", { name: "range" }, ranges.map(([v, label]) => h("option", { value: v }, label)));
  const fromIn = h("input", { type: "datetime-local", name: "from", step: "1" });
  const toIn = h("input", { type: "datetime-local", name: "to", step: "1" });
  const custom = h("div", { class: "custom", hidden: true }, field("From", fromIn), field("To", toIn), h("button", { type: "button", onclick: () => applyCustom() }, "Show"));
  const rawCb = h("input", { type: "checkbox", name: "raw" });
  const rangeErr = h("p", { class: "error", role: "alert" });
  const info = h("p", { class: "chart-info", role: "status", "aria-live": "polite" });
  const plotEl = h("div", { class: "plot", "data-testid": "chart" });
  const states = h("div", { class: "states" });
  rangeSel.addEventListener("change", () => {
    state.range = rangeSel.value;
    custom.hidden = state.range !== "custom";
    if (state.range === "custom") {
      const now = Date.now();
      fromIn.value ||= localInput(now - 3_600_000);
      toIn.value ||= localInput(now);
      return;
    }
    state.from = state.to = undefined;
    void draw();
  });
  rawCb.addEventListener("change", () => {
    state.raw = rawCb.checked;
    void draw();
  });
  function applyCustom(): void {
    const f = Date.parse(fromIn.value);
    const t = Date.parse(toIn.value);
    rangeErr.textContent = "";
    if (Number.isNaN(f) || Number.isNaN(t)) {
      rangeErr.textContent = "Enter both a start and an end time.";
      return;
    }
    if (f >= t) {
      rangeErr.textContent = "The start must be before the end.";
      return;
    }
    state.from = f;
    state.to = t;
    void draw();
  }
  replace(
    el,
    title,
    checks,
    h("div", { class: "toolbar" }, field("Time range", rangeSel), h("label", { class: "check" }, rawCb, " Raw readings (up to 100,000, no buckets)")),
    custom,
    rangeErr,
    info,
    plotEl,
    states,
    h("p", { class: "hint" }, "Drag across the chart to zoom in (raw readings appear once few enough are in view); double-click to zoom out."),
  );

  let plot: uPlot | null = null;
  // The next finished uPlot draw is measured as this User Timing entry
  // (iot-chart-draw, iot-chart-live-frame): the benchmark reads them.
  let measure: { name: string; t0: number; points: number } | null = null;
  const drawn = () => {
    if (measure) performance.measure(measure.name, { start: measure.t0, end: performance.now(), detail: { points: measure.points } });
    measure = null;
  };
  let stream: AbortController | null = null;
  let seq = 0;
  signal.addEventListener("abort", () => {
    stream?.abort();
    plot?.destroy();
  });

  async function draw(zoom?: { from: number; to: number }): Promise<void> {
    const my = ++seq;
    stream?.abort();
    stream = null;
    const chosen = sensors.filter((s) => state.selected.has(String(s.id)));
    const nums = chosen.filter(isNumeric);
    const others = chosen.filter((s) => !isNumeric(s));
    replace(states);
    if (!chosen.length) {
      plot?.destroy();
      plot = null;
      replace(plotEl, h("p", { class: "empty" }, "Pick at least one sensor."));
      info.textContent = "";
      return;
    }
    if (state.range === "live" && !zoom) {
      live(my, nums, others);
      return;
    }
    const span = ranges.find(([v]) => v === state.range)![2];
    const now = Date.now();
    const from = zoom?.from ?? state.from ?? now - span;
    const to = zoom?.to ?? state.to ?? now;
    info.textContent = "Loading…";
    try {
      const width = plotWidth();
      const series: Series[] = [];
      for (const s of nums) series.push(await history(s, from, to, width, state.raw));
      if (my !== seq) return;
      measure = { name: "iot-chart-draw", t0: performance.now(), points: series.reduce((a, s) => a + s.points, 0) };
      render(series, from, to, true);
      const n = series.reduce((a, s) => a + s.points, 0);
      info.textContent = `${fmtTime(new Date(from))} – ${fmtTime(new Date(to))}: ` + series.map((s) => `${s.sensor.name} ${s.raw ? `${s.points} raw readings` : `${s.points} buckets of ${s.interval}`}`).join("; ") + (n ? "" : " — no readings in this range.");
      for (const s of others) await stateTable(s, from, to);
    } catch (e) {
      if (my === seq) info.textContent = errorText(e);
    }
  }

  function live(my: number, nums: core.Sensor[], others: core.Sensor[]): void {
    const ctrl = new AbortController();
    stream = ctrl;
    signal.addEventListener("abort", () => ctrl.abort());
    const xs = new Map<string, number[]>();
    const ys = new Map<string, number[]>();
    for (const s of nums) {
      xs.set(String(s.id), []);
      ys.set(String(s.id), []);
    }
    const stateRows = new Map<string, query.Reading[]>();
    for (const s of others) stateRows.set(String(s.id), []);
    let received = 0;
    let pending = false;
    const flush = () => {
      pending = false;
      if (my !== seq) return;
      const now = Date.now();
      measure = { name: "iot-chart-live-frame", t0: performance.now(), points: 0 };
      const series: Series[] = nums.map((s) => {
        const x = xs.get(String(s.id))!;
        const y = ys.get(String(s.id))!;
        let cut = 0;
        while (cut < x.length && (x[cut] < (now - LIVE_WINDOW_MS) / 1000 || x.length - cut > MAX_LIVE)) cut++;
        if (cut) {
          x.splice(0, cut);
          y.splice(0, cut);
        }
        return { sensor: s, x, avg: y, raw: true, points: x.length, interval: "" };
      });
      render(series, now - LIVE_WINDOW_MS, now, false);
      info.textContent = `Live: ${received} readings received since ${fmtTime(started)}.`;
      for (const s of others) stateView(s, stateRows.get(String(s.id))!, now - LIVE_WINDOW_MS, now);
    };
    const started = new Date();
    info.textContent = "Live: waiting for readings…";
    render(
      nums.map((s) => ({ sensor: s, x: [], avg: [], raw: true, points: 0, interval: "" })),
      Date.now() - LIVE_WINDOW_MS,
      Date.now(),
      false,
    );
    for (const s of others) stateView(s, [], Date.now() - LIVE_WINDOW_MS, Date.now());
    void (async () => {
      // Resume from the last reading seen after a dropped stream.
      let since = String(Date.now() - LIVE_WINDOW_MS);
      for (let attempt = 0; !ctrl.signal.aborted; attempt++) {
        try {
          const ids = [...nums, ...others].map((s) => s.id);
          for await (const m of queryApi.subscribe({ sensorId: ids, since }, { signal: ctrl.signal })) {
            attempt = 0;
            for (const r of m.readings) {
              received++;
              const t = tsDate(r.timestamp)!.getTime();
              since = String(t);
              const k = String(r.sensorId);
              const x = xs.get(k);
              if (x) {
                x.push(t / 1000);
                ys.get(k)!.push(numeric(r));
              } else stateRows.get(k)?.push(r);
            }
            if (!pending) {
              pending = true;
              requestAnimationFrame(flush);
            }
          }
        } catch (e) {
          if (ctrl.signal.aborted) return;
          info.textContent = `Live stream interrupted: ${errorText(e)} Reconnecting…`;
        }
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
      }
    })();
  }

  async function stateTable(s: core.Sensor, from: number, to: number): Promise<void> {
    const r = await queryApi.listReadings({ sensorId: s.id, from: String(from), to: String(to), limit: 1000, order: 2 });
    stateView(s, r.readings.reverse(), from, to);
  }

  function stateView(s: core.Sensor, rows: query.Reading[], from: number, to: number): void {
    const id = `state-${s.id}`;
    let box = states.querySelector<HTMLElement>(`#${id}`);
    if (!box) {
      box = h("section", { id, class: "state", "data-state": String(s.id) });
      states.append(box);
    }
    const span = Math.max(1, to - from);
    const palette = new Map<string, string>();
    const color = (v: string) => {
      if (!palette.has(v)) palette.set(v, v === "true" ? "#2b8a3e" : v === "false" ? "#adb5bd" : COLORS[palette.size % COLORS.length]);
      return palette.get(v)!;
    };
    const segs = rows.map((r, i) => {
      const t = Math.max(from, tsDate(r.timestamp)!.getTime());
      const end = i + 1 < rows.length ? tsDate(rows[i + 1].timestamp)!.getTime() : to;
      const v = valueText(r);
      const seg = h("span", { class: "seg", title: `${v} from ${fmtTime(new Date(t))}` });
      seg.style.left = `${((t - from) / span) * 100}%`;
      seg.style.width = `${Math.max(0.2, ((Math.min(end, to) - t) / span) * 100)}%`;
      seg.style.background = color(v);
      return seg;
    });
    const last = rows.slice(-20).reverse();
    replace(
      box,
      h("h3", null, `${s.name} — ${s.valueType === core.ValueType.BOOLEAN ? "state" : "keyword"} timeline`),
      h("div", { class: "timeline", role: "img", "aria-label": `Timeline of ${s.name}: ${rows.length} readings` }, segs),
      h("div", { class: "legend" }, [...palette].map(([v, c]) => h("span", null, swatch(c), v))),
      last.length
        ? h(
            "table",
            { "aria-label": `Latest values of ${s.name}` },
            h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "Value"))),
            h("tbody", null, last.map((r) => h("tr", null, h("td", null, fmtTime(tsDate(r.timestamp))), h("td", null, valueText(r))))),
          )
        : h("p", { class: "empty" }, "No readings in this range."),
    );
  }

  function plotWidth(): number {
    return Math.max(300, Math.floor(plotEl.clientWidth || el.clientWidth || 800));
  }

  function render(series: Series[], from: number, to: number, zoomable: boolean): void {
    if (!series.length) {
      plot?.destroy();
      plot = null;
      replace(plotEl);
      return;
    }
    const data = align(series);
    const key = series.map((s) => `${s.sensor.id}:${s.raw}`).join(",") + `:${zoomable}`;
    if (plot && plot.root.dataset.key === key) {
      plot.setData(data as uPlot.AlignedData, false);
      plot.setScale("x", { min: from / 1000, max: to / 1000 });
      return;
    }
    plot?.destroy();
    replace(plotEl);
    const s: uPlot.Series[] = [{}];
    const bands: uPlot.Band[] = [];
    series.forEach((ser, i) => {
      const c = COLORS[i % COLORS.length];
      const label = `${ser.sensor.name}${ser.sensor.unit ? ` (${ser.sensor.unit})` : ""}`;
      s.push({ label: ser.raw ? label : `${label} avg`, stroke: c, width: 1.5, spanGaps: true, points: { show: false } });
      if (!ser.raw) {
        const base = s.length;
        s.push({ label: `${ser.sensor.name} max`, stroke: c + "55", width: 0.5, spanGaps: true, points: { show: false } });
        s.push({ label: `${ser.sensor.name} min`, stroke: c + "55", width: 0.5, spanGaps: true, points: { show: false } });
        bands.push({ series: [base, base + 1], fill: c + "22" });
      }
    });
    plot = new uPlot(
      {
        width: plotWidth(),
        height: 280,
        series: s,
        bands,
        scales: { x: { time: true, min: from / 1000, max: to / 1000 } },
        cursor: { drag: { x: zoomable, y: false, setScale: false } },
        legend: { live: true },
        hooks: zoomable
          ? {
              draw: [drawn],
              setSelect: [
                (u) => {
                  if (u.select.width < 5) return;
                  const a = u.posToVal(u.select.left, "x") * 1000;
                  const b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
                  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
                  void draw({ from: Math.floor(a), to: Math.ceil(b) });
                },
              ],
            }
          : { draw: [drawn] },
      },
      data as uPlot.AlignedData,
      plotEl,
    );
    plot.root.dataset.key = key;
    plot.root.setAttribute("role", "img");
    plot.root.setAttribute("aria-label", `Chart of ${series.map((x) => x.sensor.name).join(", ")}`);
    if (zoomable) plot.over.addEventListener("dblclick", () => void draw());
  }

  void draw();
}

interface Series {
  sensor: core.Sensor;
  x: number[];
  avg: (number | null)[];
  min?: (number | null)[];
  max?: (number | null)[];
  raw: boolean;
  points: number;
  interval: string;
}

/** Bucketed (avg/min/max) or raw history of one sensor, sized to width px. */
async function history(s: core.Sensor, from: number, to: number, width: number, forceRaw: boolean): Promise<Series> {
  const buckets = Math.max(10, Math.min(5000, Math.floor(width / 2)));
  const sec = Math.max(1, Math.ceil((to - from) / 1000 / buckets));
  const interval = `${sec}s`;
  let agg: query.AggregateResponse | null = null;
  if (!forceRaw) {
    agg = await queryApi.aggregate({ sensorId: s.id, from: String(from), to: String(to), interval, fn: ["avg", "min", "max"] });
    const total = agg.buckets.reduce((a, b) => a + Number(b.count), 0);
    // Zoomed in far enough: few readings per pixel, draw them all.
    if (total > width * RAW_PER_PX) {
      const x = agg.buckets.map((b) => tsDate(b.start)!.getTime() / 1000 + sec / 2);
      return { sensor: s, x, avg: agg.buckets.map((b) => b.avg ?? null), min: agg.buckets.map((b) => b.min ?? null), max: agg.buckets.map((b) => b.max ?? null), raw: false, points: agg.buckets.length, interval };
    }
  }
  const x: number[] = [];
  const y: number[] = [];
  let page = "";
  do {
    const r = await queryApi.listReadings({ sensorId: s.id, from: String(from), to: String(to), limit: 10_000, pageToken: page });
    for (const rd of r.readings) {
      x.push(tsDate(rd.timestamp)!.getTime() / 1000);
      y.push(numeric(rd));
    }
    page = r.nextPageToken;
  } while (page && x.length < MAX_RAW);
  return { sensor: s, x, avg: y, raw: true, points: x.length, interval: "" };
}

/** One x axis for several series (uPlot's aligned data), nulls where a series has no point. */
function align(series: Series[]): (number | null)[][] {
  const cols = (s: Series) => (s.raw ? [s.avg] : [s.avg, s.max!, s.min!]);
  if (series.length === 1) return [series[0].x, ...cols(series[0])];
  const tables = series.map((s) => [s.x, ...cols(s)] as uPlot.AlignedData);
  return uPlot.join(tables) as (number | null)[][];
}

function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

function swatch(color: string): HTMLElement {
  const i = h("i", { class: "swatch" });
  i.style.background = color;
  return i;
}
