// The health strip: the API process's readiness (/readyz) and the ingest
// rate from the platform's own Prometheus counters (/metrics). Both are
// the public operational endpoints every process serves.
import { h, replace } from "./dom";

let last: { t: number; accepted: number } | null = null;

export function startHealth(el: HTMLElement, signal: AbortSignal): void {
  const tick = async () => {
    if (signal.aborted) return;
    let ready = "unknown";
    let failed: string[] = [];
    try {
      const r = await fetch("/readyz", { signal, cache: "no-store" });
      const j = (await r.json()) as { status: string; failed?: Record<string, string> };
      ready = j.status;
      failed = Object.keys(j.failed ?? {});
    } catch {
      ready = "unreachable";
    }
    let rate = "";
    try {
      const text = await (await fetch("/metrics", { signal, cache: "no-store" })).text();
      const accepted = sumCounter(text, "iot_ingest_readings_total", 'result="accepted"');
      const now = performance.now();
      if (accepted !== null) {
        if (last && now > last.t) rate = `${Math.max(0, ((accepted - last.accepted) * 1000) / (now - last.t)).toFixed(1)} readings/s`;
        else rate = `${accepted} readings so far`;
        last = { t: now, accepted };
      } else rate = "no ingest role here";
    } catch {
      /* metrics are optional */
    }
    if (signal.aborted) return;
    const ok = ready === "ok";
    replace(
      el,
      h("span", { class: `dot ${ok ? "ok" : "bad"}`, "aria-hidden": "true" }),
      h("span", { "data-testid": "ready" }, ok ? "Ready" : ready === "unreachable" ? "Unreachable" : `Not ready${failed.length ? `: ${failed.join(", ")}` : ""}`),
      rate ? h("span", { class: "rate", "data-testid": "ingest-rate" }, ` · ingest ${rate}`) : null,
    );
    el.title = "Readiness from /readyz, ingest rate from iot_ingest_readings_total in /metrics";
  };
  void tick();
  const timer = setInterval(tick, 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
}

/** Sums the samples of a counter whose labels contain match. */
export function sumCounter(text: string, name: string, match: string): number | null {
  let sum: number | null = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue;
    if (match && !line.includes(match)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!Number.isNaN(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}
