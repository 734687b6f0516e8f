import { coreApi, errorText, queryApi, tsDate } from "../api";
import { type Page } from "../app";
import { field, fmtTime, h, replace } from "../dom";

/** Readings that could never be stored, newest first, with their reasons. */
export async function deadLettersPage({ main, query }: Page): Promise<void> {
  const devSel = h("select", { name: "device" }, h("option", { value: "0" }, "All devices"));
  const list = h("div", { class: "list" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Older…");
  main.append(
    h("h1", null, "Dead letters"),
    h("p", { class: "lead" }, "Readings the platform received but could not store — for example an MQTT 3 publish naming an unknown sensor — with the reason. Fix the device, then send again."),
    h("div", { class: "toolbar" }, field("Device", devSel)),
    list,
    more,
  );
  try {
    for (const d of (await coreApi.listDevices({ pageSize: 1000 })).result) devSel.append(h("option", { value: String(d.id) }, `${d.name} (id ${d.id})`));
  } catch (e) {
    replace(list, h("p", { class: "error", role: "alert" }, errorText(e)));
    return;
  }
  devSel.value = query.get("device") ?? "0";
  if (devSel.selectedIndex < 0) devSel.value = "0";
  let token = "";
  let tbody: HTMLTableSectionElement | null = null;
  async function load(reset: boolean): Promise<void> {
    if (reset) {
      token = "";
      tbody = null;
    }
    try {
      const r = await queryApi.listDeadLetters({ deviceId: BigInt(devSel.value), limit: 100, pageToken: token });
      token = r.nextPageToken;
      more.hidden = !token;
      if (!tbody) {
        if (!r.deadLetters.length) {
          replace(list, h("p", { class: "empty" }, "No dead letters. Every reading received was stored."));
          return;
        }
        tbody = h("tbody");
        replace(list, h("table", { "aria-label": "Dead letters" }, h("thead", null, h("tr", null, h("th", null, "Time"), h("th", null, "Device"), h("th", null, "Sensor"), h("th", null, "Protocol"), h("th", null, "Reason"), h("th", null, "Payload"))), tbody));
      }
      const dec = new TextDecoder();
      for (const d of r.deadLetters) {
        let payload = dec.decode(d.payload.slice(0, 300));
        if (d.payload.length > 300) payload += "…";
        tbody.append(h("tr", { "data-deadletter": d.id }, h("td", null, fmtTime(tsDate(d.time))), h("td", { class: "num" }, String(d.deviceId)), h("td", { class: "num" }, d.sensorId ? String(d.sensorId) : "—"), h("td", null, d.protocol), h("td", { class: "reason" }, d.reason), h("td", null, h("code", { class: "payload" }, payload))));
      }
    } catch (e) {
      replace(list, h("p", { class: "error", role: "alert" }, errorText(e)));
    }
  }
  devSel.addEventListener("change", () => {
    history.replaceState(null, "", devSel.value === "0" ? "/deadletters" : `/deadletters?device=${devSel.value}`);
    void load(true);
  });
  more.addEventListener("click", () => void load(false));
  await load(true);
}
