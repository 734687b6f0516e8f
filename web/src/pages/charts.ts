import { coreApi, errorText } from "../api";
import { type Page } from "../app";
import { h, replace } from "../dom";
import { sensorCharts } from "../chart";
import type { core } from "../api";

/** Charts of sensors from one or more devices on one time axis. */
export async function chartsPage({ main, query, signal }: Page): Promise<void> {
  main.append(h("h1", null, "Charts"));
  let devices: core.Device[];
  try {
    devices = (await coreApi.listDevices({ pageSize: 1000 })).result;
  } catch (e) {
    main.append(h("p", { class: "error", role: "alert" }, errorText(e)));
    return;
  }
  if (!devices.length) {
    main.append(h("p", { class: "empty" }, "No devices yet: add a device and a sensor first."));
    return;
  }
  const want = new Set(query.getAll("device"));
  if (!want.size) want.add(String(devices[0].id));
  const slot = h("section", { class: "charts", "aria-labelledby": "chart-title" });
  let ctrl: AbortController | null = null;
  const pick = h(
    "fieldset",
    { class: "pick" },
    h("legend", null, "Devices"),
    devices.map((d) => {
      const cb = h("input", { type: "checkbox", name: "device", value: String(d.id), checked: want.has(String(d.id)) });
      cb.addEventListener("change", () => {
        if (cb.checked) want.add(cb.value);
        else want.delete(cb.value);
        const q = new URLSearchParams([...want].map((v) => ["device", v]));
        history.replaceState(null, "", `/charts?${q}`);
        void load();
      });
      return h("label", { class: "check" }, cb, ` ${d.name}`);
    }),
  );
  main.append(pick, slot);
  async function load(): Promise<void> {
    ctrl?.abort();
    ctrl = new AbortController();
    signal.addEventListener("abort", () => ctrl?.abort());
    const sensors: core.Sensor[] = [];
    try {
      for (const d of devices.filter((x) => want.has(String(x.id)))) {
        for (const s of (await coreApi.listSensors({ deviceId: d.id })).result) {
          sensors.push(devices.length > 1 ? { ...s, name: `${d.name}: ${s.name}` } : s);
        }
      }
    } catch (e) {
      replace(slot, h("p", { class: "error", role: "alert" }, errorText(e)));
      return;
    }
    sensorCharts(slot, sensors, ctrl.signal, { title: "Sensors" });
  }
  await load();
}
