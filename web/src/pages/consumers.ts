import { coreApi, current, errorText, tsDate } from "../api";
import { link, type Page } from "../app";
import { copy, download, field, fmtTime, h, replace } from "../dom";
import { confirmDialog, form, invalid, status } from "../forms";

export async function consumersPage({ main }: Page): Promise<void> {
  const admin = current()?.admin;
  const msg = status();
  const list = h("div", { class: "list" });
  const formSlot = h("div");
  const addBtn = h("button", { type: "button", onclick: () => showForm() }, "Add consumer");
  main.append(
    h("div", { class: "title" }, h("h1", null, "Consumers"), addBtn),
    h("p", { class: "lead" }, "Consumers are read-only clients (analytics jobs, dashboards) with their own key; they read only the sensors granted to them."),
    formSlot,
    msg,
    list,
  );
  async function load(): Promise<void> {
    try {
      const r = await coreApi.listConsumers({ pageSize: 1000 });
      replace(
        list,
        r.result.length
          ? h(
              "table",
              { "aria-label": "Consumers" },
              h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Id"), h("th", null, "Description"), admin ? h("th", null, "Owner") : null, h("th", null, "Granted sensors"), h("th", null, h("span", { class: "sr" }, "Actions")))),
              h(
                "tbody",
                null,
                r.result.map((c) =>
                  h(
                    "tr",
                    { "data-consumer": String(c.id) },
                    h("td", null, link(`/consumers/${c.id}`, c.name)),
                    h("td", { class: "num" }, String(c.id)),
                    h("td", null, c.description),
                    admin ? h("td", { class: "num" }, String(c.ownerId)) : null,
                    h("td", null, c.sensorIds.length ? c.sensorIds.join(", ") : "none"),
                    h("td", null, link(`/consumers/${c.id}`, "View")),
                  ),
                ),
              ),
            )
          : h("p", { class: "empty" }, "No consumers yet."),
      );
    } catch (e) {
      replace(list, h("p", { class: "error", role: "alert" }, errorText(e)));
    }
  }
  function showForm(): void {
    const name = h("input", { name: "name", maxlength: "200" });
    const desc = h("input", { name: "description" });
    const close = () => {
      replace(formSlot);
      addBtn.hidden = false;
      addBtn.focus();
    };
    replace(
      formSlot,
      form({
        label: "Add consumer",
        submit: "Add",
        fields: [field("Name", name, "Unique among your consumers."), field("Description", desc)],
        check: () => (invalid(name, !name.value.trim()) ? "Give the consumer a name." : null),
        run: async () => {
          const r = await coreApi.createConsumer({ name: name.value.trim(), description: desc.value.trim() });
          close();
          msg.replaceChildren(`Consumer “${r.result!.name}” created (id ${r.result!.id}). `, link(`/consumers/${r.result!.id}`, "View it"), " to grant sensors and download its key.");
          await load();
        },
        cancel: close,
      }),
    );
    addBtn.hidden = true;
    name.focus();
  }
  await load();
}

export async function consumerPage({ main, params }: Page): Promise<void> {
  let id: bigint;
  try {
    id = BigInt(params[0]);
  } catch {
    main.append(h("h1", null, "Consumer not found"), h("p", { class: "error", role: "alert" }, `“${params[0]}” is not a consumer id.`));
    return;
  }
  const msg = status();
  const body = h("div");
  main.append(h("p", { class: "crumbs" }, link("/consumers", "Consumers"), " / ", params[0]), body);

  async function load(): Promise<void> {
    let c;
    try {
      c = (await coreApi.getConsumer({ id })).result!;
    } catch (e) {
      replace(body, h("h1", null, "Consumer"), h("p", { class: "error", role: "alert" }, errorText(e)));
      return;
    }
    document.title = `${c.name} · Consumers · iotplatform`;
    const keyBtn = h("button", { type: "button", onclick: () => downloadKey() }, "Download consumer key");
    const rotateBtn = h("button", { type: "button", class: "danger", onclick: () => rotate(rotateBtn) }, "Rotate key…");
    const sensorIn = h("input", { name: "sensor_id", inputmode: "numeric", placeholder: "sensor id" });
    const grant = form({
      label: "Grant a sensor",
      submit: "Grant",
      fields: [field("Sensor id", sensorIn, "The sensor id shown on the device page (you must own the device).")],
      check: () => (invalid(sensorIn, !/^[1-9][0-9]{0,18}$/.test(sensorIn.value.trim())) ? "Enter a sensor id: a positive whole number." : null),
      run: async () => {
        await coreApi.grantSensor({ consumerId: id, sensorId: BigInt(sensorIn.value.trim()) });
        msg.textContent = `Sensor ${sensorIn.value.trim()} granted.`;
        await load();
      },
    });
    replace(
      body,
      h("div", { class: "title" }, h("h1", null, c.name), h("div", { class: "actions" }, keyBtn, rotateBtn)),
      h(
        "dl",
        { class: "facts" },
        h("dt", null, "Consumer id"),
        h("dd", null, h("code", null, String(c.id))),
        h("dt", null, "Description"),
        h("dd", null, c.description || "—"),
        h("dt", null, "Created"),
        h("dd", null, fmtTime(tsDate(c.createTime))),
      ),
      msg,
      h("h2", null, "Granted sensors"),
      c.sensorIds.length
        ? h(
            "ul",
            { class: "grants" },
            c.sensorIds.map((sid) =>
              h(
                "li",
                { "data-grant": String(sid) },
                "Sensor ",
                h("code", null, String(sid)),
                " ",
                h(
                  "button",
                  {
                    type: "button",
                    class: "secondary",
                    "aria-label": `Revoke sensor ${sid}`,
                    onclick: async () => {
                      try {
                        await coreApi.revokeSensor({ consumerId: id, sensorId: sid });
                        msg.textContent = `Sensor ${sid} revoked: the consumer can no longer read it.`;
                        await load();
                      } catch (e) {
                        msg.textContent = errorText(e);
                      }
                    },
                  },
                  "Revoke",
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, "No sensor granted yet."),
      grant,
      h("h2", null, "Read as this consumer"),
      h("p", null, "With the downloaded key:"),
      readSnippet(c.sensorIds[0]),
    );
  }

  function readSnippet(sid: bigint | undefined): HTMLElement {
    const text = `TOKEN=$(jq -r .token consumer-${id}-key.json)\ncurl -s -H "authorization: Bearer $TOKEN" "${location.origin}/api/sensors/latest?sensor_id=${sid ?? "<sensor id>"}"`;
    const b: HTMLButtonElement = h("button", { type: "button", class: "secondary", onclick: () => copy(text, b) }, "Copy");
    return h("div", null, h("pre", null, h("code", null, text)), b);
  }

  async function downloadKey(): Promise<void> {
    try {
      const r = await coreApi.getConsumerKey({ id });
      download(`consumer-${id}-key.json`, JSON.stringify({ token: r.token, consumer_id: String(id), expire_time: tsDate(r.expireTime)?.toISOString() ?? null }, null, 2) + "\n");
      msg.textContent = `Consumer key saved as consumer-${id}-key.json. It reads only the granted sensors.`;
    } catch (e) {
      msg.textContent = errorText(e);
    }
  }

  async function rotate(btn: HTMLButtonElement): Promise<void> {
    const ok = await confirmDialog(
      "Rotate the consumer key?",
      [
        h("p", null, h("strong", null, "The current key stops working"), " within seconds: every program reading with it (REST, Connect, gRPC, live subscriptions) is refused."),
        h("p", null, "Give the new key to everyone who uses this consumer. Grants stay as they are."),
      ],
      "Rotate key",
    );
    if (ok) {
      try {
        const r = await coreApi.rotateConsumerKey({ id });
        download(`consumer-${id}-key.json`, JSON.stringify({ token: r.token, consumer_id: String(id), expire_time: tsDate(r.expireTime)?.toISOString() ?? null }, null, 2) + "\n");
        msg.textContent = `Key rotated: the old key no longer works. The new key was saved as consumer-${id}-key.json.`;
      } catch (e) {
        msg.textContent = errorText(e);
      }
    }
    btn.focus();
  }
  await load();
}
