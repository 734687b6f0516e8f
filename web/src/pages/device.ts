import { commandApi, coreApi, core, errorText, queryApi, tsDate, valueText } from "../api";
import { link, type Page } from "../app";
import { ago, copy, download, field, fmtTime, h, replace, type Child } from "../dom";
import { confirmDialog, form, invalid, status } from "../forms";
import { snippets } from "../snippets";
import { sensorCharts } from "../chart";

const typeNames: [core.ValueType, string][] = [
  [core.ValueType.DOUBLE, "double (number)"],
  [core.ValueType.LONG, "long (integer)"],
  [core.ValueType.BOOLEAN, "boolean"],
  [core.ValueType.STRING, "string (keyword)"],
  [core.ValueType.OBJECT, "object (JSON)"],
];
export const typeName = (t: core.ValueType) => (typeNames.find(([v]) => v === t)?.[1] ?? "unspecified").split(" ")[0];

export async function devicePage(p: Page): Promise<void> {
  const { main, params, signal } = p;
  let id: bigint;
  try {
    id = BigInt(params[0]);
  } catch {
    main.append(h("h1", null, "Device not found"), h("p", { class: "error", role: "alert" }, `“${params[0]}” is not a device id.`), link("/devices", "Back to devices"));
    return;
  }
  let tree: core.GetDeviceTreeResponse;
  try {
    tree = await coreApi.getDeviceTree({ id });
  } catch (e) {
    main.append(h("h1", null, "Device"), h("p", { class: "error", role: "alert" }, errorText(e)), link("/devices", "Back to devices"));
    return;
  }
  const dev = tree.device!;
  document.title = `${dev.name} · Devices · iotplatform`;
  const msg = status();
  const lastSeen = h("span", { "data-testid": "last-seen" }, "—");
  const online = h("span", { "data-testid": "online" }, "—");
  const formSlot = h("div");
  const treeEl = h("div", { class: "tree", "aria-label": "Sensors" });
  const connect = h("section", { class: "connect", "aria-labelledby": "connect-title" });
  const chartSlot = h("section", { class: "charts", "aria-labelledby": "chart-title" });

  const addSensorBtn = h("button", { type: "button", onclick: () => showSensorForm() }, "Add sensor");
  const keyBtn = h("button", { type: "button", onclick: () => downloadKey() }, "Download device key");
  const rotateBtn = h("button", { type: "button", class: "danger", onclick: () => rotate() }, "Rotate key…");

  main.append(
    h("p", { class: "crumbs" }, link("/devices", "Devices"), " / ", dev.name),
    h("div", { class: "title" }, h("h1", null, dev.name), h("div", { class: "actions" }, addSensorBtn, keyBtn, rotateBtn)),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "Device id"),
      h("dd", null, h("code", { "data-testid": "device-id" }, String(dev.id)), " ", copyBtn(String(dev.id), "Copy device id")),
      h("dt", null, "Description"),
      h("dd", null, dev.description || "—"),
      h("dt", null, "Created"),
      h("dd", null, fmtTime(tsDate(dev.createTime))),
      h("dt", null, "Connection"),
      h("dd", null, online),
      h("dt", null, "Last seen"),
      h("dd", null, lastSeen),
    ),
    formSlot,
    msg,
    h("h2", null, "Sensors"),
    treeEl,
    chartSlot,
    connect,
  );

  let sensors: core.Sensor[] = [];
  const latestCells = new Map<string, HTMLElement>();

  function renderTree(): void {
    sensors = [];
    latestCells.clear();
    const walk = (n: core.TreeNode): Child => {
      if (n.sensor) {
        const s = n.sensor;
        sensors.push(s);
        const cell = h("span", { class: "latest", "data-latest": String(s.id) }, "no reading yet");
        latestCells.set(String(s.id), cell);
        return h(
          "li",
          { class: "sensor", "data-sensor": String(s.id), "data-name": s.name },
          h("span", { class: "name" }, s.name),
          " ",
          h("span", { class: "type" }, typeName(s.valueType), s.unit ? ` · ${s.unit}` : ""),
          " ",
          h("span", { class: "sid", title: "sensor_id — readings name their sensor with it" }, "id ", h("code", { "data-testid": "sensor-id" }, String(s.id))),
          copyBtn(String(s.id), `Copy sensor id of ${s.name}`),
          " ",
          cell,
          s.description ? h("div", { class: "desc" }, s.description) : null,
        );
      }
      return h("li", { class: "path" }, h("span", { class: "seg" }, n.name + "/"), h("ul", null, n.children.map(walk)));
    };
    const kids = tree.root?.children ?? [];
    replace(treeEl, kids.length ? h("ul", { class: "root" }, kids.map(walk)) : h("p", { class: "empty" }, "No sensors yet. Add one, then download the device key and connect the device."));
  }

  async function refreshLatest(): Promise<void> {
    if (!sensors.length || signal.aborted) return;
    try {
      const r = await queryApi.latest({ sensorId: sensors.map((s) => s.id) }, { signal });
      for (const rd of r.readings) {
        const t = tsDate(rd.timestamp);
        const unit = sensors.find((s) => s.id === rd.sensorId)?.unit ?? "";
        const cell = latestCells.get(String(rd.sensorId));
        if (cell) replace(cell, h("b", null, valueText(rd), unit ? ` ${unit}` : ""), " at ", h("time", { datetime: t?.toISOString() }, fmtTime(t)));
      }
    } catch (e) {
      if (!signal.aborted) msg.textContent = errorText(e);
    }
  }

  // Online and last seen come from the device state (CommandService.GetDeviceState):
  // the last connection activity on any edge, written at most every 10 s per device.
  async function refreshState(): Promise<void> {
    if (signal.aborted) return;
    try {
      const st = (await commandApi.getDeviceState({ deviceId: id }, { signal })).result;
      const since = tsDate(st?.onlineSince);
      const seen = tsDate(st?.lastSeen);
      if (st?.online) replace(online, h("b", { class: "ok" }, "online"), st.edge ? ` via ${st.edge}` : "", since ? ` since ${fmtTime(since)}` : "");
      else replace(online, "offline");
      if (seen) replace(lastSeen, h("time", { datetime: seen.toISOString() }, `${fmtTime(seen)} (${ago(seen)})`));
      else replace(lastSeen, "never");
    } catch (e) {
      if (!signal.aborted) replace(lastSeen, h("span", { class: "error" }, errorText(e)));
    }
  }

  async function reload(): Promise<void> {
    tree = await coreApi.getDeviceTree({ id });
    renderTree();
    renderConnect();
    await renderCharts();
    await refreshLatest();
  }

  function showSensorForm(): void {
    const name = h("input", { name: "name", maxlength: "200" });
    const desc = h("input", { name: "description" });
    const type = h("select", { name: "type" }, typeNames.map(([v, n]) => h("option", { value: String(v) }, n)));
    const unit = h("input", { name: "unit", placeholder: "e.g. °C, kPa" });
    const path = h("input", { name: "path", placeholder: "e.g. wheels/front/left" });
    const close = () => {
      replace(formSlot);
      addSensorBtn.hidden = false;
    };
    const f = form({
      label: "Add sensor",
      submit: "Add",
      fields: [
        field("Name", name, "Unique among the device's sensors on the same path; no “/”."),
        field("Description", desc),
        field("Type", type),
        field("Unit", unit),
        field("Path", path, "Optional: groups sensors in a tree, segments separated by “/”."),
      ],
      check: () => {
        if (invalid(name, !name.value.trim())) return "Give the sensor a name.";
        if (invalid(name, name.value.includes("/"))) return "A sensor name cannot contain “/” — put the grouping into Path.";
        return null;
      },
      run: async () => {
        const r = await coreApi.createSensor({
          deviceId: id,
          name: name.value.trim(),
          description: desc.value.trim(),
          valueType: Number(type.value),
          unit: unit.value.trim(),
          path: path.value.trim(),
        });
        close();
        msg.textContent = `Sensor “${r.sensor!.name}” added with sensor id ${r.sensor!.id}.`;
        await reload();
        addSensorBtn.focus();
      },
      cancel: () => {
        close();
        addSensorBtn.focus();
      },
    });
    replace(formSlot, f);
    addSensorBtn.hidden = true;
    name.focus();
  }

  async function downloadKey(): Promise<void> {
    try {
      const r = await coreApi.getDeviceKey({ id });
      download(`device-${dev.id}-key.json`, JSON.stringify({ token: r.token, device_id: String(dev.id), expire_time: tsDate(r.expireTime)?.toISOString() ?? null }, null, 2) + "\n");
      msg.textContent = `Device key saved as device-${dev.id}-key.json. Keep it secret: anyone holding it can send readings as this device.`;
    } catch (e) {
      msg.textContent = errorText(e);
    }
  }

  async function rotate(): Promise<void> {
    const ok = await confirmDialog(
      "Rotate the device key?",
      [
        h("p", null, h("strong", null, "The current key stops working"), " for this device within seconds: HTTP, WebSocket, MQTT and gRPC requests signed with it are refused, and open WebSocket and MQTT connections using it are closed."),
        h("p", null, "Every copy of the old key — on the device, in scripts, in downloaded key files — must be replaced by the new key. Readings already stored are kept."),
      ],
      "Rotate key",
    );
    if (!ok) {
      rotateBtn.focus();
      return;
    }
    try {
      const r = await coreApi.rotateDeviceKey({ id });
      download(`device-${dev.id}-key.json`, JSON.stringify({ token: r.token, device_id: String(dev.id), expire_time: tsDate(r.expireTime)?.toISOString() ?? null }, null, 2) + "\n");
      msg.textContent = `Key rotated: the old key no longer works. The new key was saved as device-${dev.id}-key.json.`;
      shownToken = undefined;
      renderConnect();
    } catch (e) {
      msg.textContent = errorText(e);
    }
    rotateBtn.focus();
  }

  let shownToken: string | undefined;
  let chosenSnippet = "curl";
  let chosenSensor = "";
  function renderConnect(): void {
    const title = h("h2", { id: "connect-title" }, "Connect this device");
    if (!sensors.length) {
      replace(connect, title, h("p", { class: "empty" }, "Add a sensor first; the snippets send a reading to it."));
      return;
    }
    if (!sensors.some((s) => String(s.id) === chosenSensor)) chosenSensor = String(sensors[0].id);
    const sel = h(
      "select",
      { name: "snippet-sensor", onchange: () => ((chosenSensor = sel.value), renderConnect()) },
      sensors.map((s) => h("option", { value: String(s.id), selected: String(s.id) === chosenSensor }, `${s.path ? s.path + "/" : ""}${s.name} (id ${s.id})`)),
    );
    const sensor = sensors.find((s) => String(s.id) === chosenSensor)!;
    const list = snippets({ deviceId: String(dev.id), sensorId: chosenSensor, valueType: sensor.valueType, token: shownToken });
    if (!list.some((s) => s.id === chosenSnippet)) chosenSnippet = list[0].id;
    const tabs = h("div", { role: "tablist", "aria-label": "Client" });
    const panel = h("div", { role: "tabpanel", id: "snippet-panel" });
    const show = (sn: (typeof list)[number]) => {
      chosenSnippet = sn.id;
      for (const b of tabs.querySelectorAll("button")) {
        const on = b.dataset.snippet === sn.id;
        b.setAttribute("aria-selected", String(on));
        b.tabIndex = on ? 0 : -1;
      }
      const pre = h("pre", { "data-snippet": sn.id }, h("code", { class: `lang-${sn.lang}` }, sn.text));
      const cb: HTMLButtonElement = h("button", { type: "button", class: "secondary", onclick: () => copy(sn.text, cb) }, "Copy");
      replace(panel, pre, cb);
    };
    list.forEach((sn, i) => {
      const b = h("button", { type: "button", role: "tab", "data-snippet": sn.id, "aria-controls": "snippet-panel", onclick: () => show(sn) }, sn.label);
      b.addEventListener("keydown", (e) => {
        const k = (e as KeyboardEvent).key;
        const d = k === "ArrowRight" ? 1 : k === "ArrowLeft" ? -1 : 0;
        if (!d) return;
        const next = list[(i + d + list.length) % list.length];
        show(next);
        (tabs.querySelector(`[data-snippet="${next.id}"]`) as HTMLElement).focus();
      });
      tabs.append(b);
    });
    const keyToggle = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          if (shownToken) {
            shownToken = undefined;
          } else {
            try {
              shownToken = (await coreApi.getDeviceKey({ id })).token;
            } catch (e) {
              msg.textContent = errorText(e);
            }
          }
          renderConnect();
        },
      },
      shownToken ? "Hide the key in snippets" : "Put the key into the snippets",
    );
    replace(
      connect,
      title,
      h("p", null, "Ready to paste: each sends one reading to the chosen sensor. Without the key filled in they read it from the file “Download device key” saves."),
      h("div", { class: "toolbar" }, field("Sensor", sel), keyToggle),
      tabs,
      panel,
    );
    show(list.find((s) => s.id === chosenSnippet)!);
  }

  let charts: AbortController | null = null;
  async function renderCharts(): Promise<void> {
    charts?.abort();
    charts = new AbortController();
    signal.addEventListener("abort", () => charts?.abort());
    sensorCharts(chartSlot, sensors, charts.signal);
  }

  renderTree();
  renderConnect();
  await renderCharts();
  await Promise.all([refreshLatest(), refreshState()]);
  const timer = setInterval(() => void Promise.all([refreshLatest(), refreshState()]), 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
}

function copyBtn(text: string, label: string): HTMLButtonElement {
  const b: HTMLButtonElement = h("button", { type: "button", class: "icon", "aria-label": label, title: label, onclick: () => copy(text, b) }, "Copy");
  return b;
}
