import { coreApi, current, errorText, tsDate } from "../api";
import { link, navigate, type Page } from "../app";
import { field, fmtTime, h, replace } from "../dom";
import { form, invalid, status } from "../forms";

export async function devicesPage({ main }: Page): Promise<void> {
  const admin = current()?.admin;
  const msg = status();
  const list = h("div", { class: "list" });
  const filter = h("input", { type: "search", name: "filter", placeholder: "name contains…" });
  const formSlot = h("div");
  const addBtn = h("button", { type: "button", onclick: () => showForm() }, "Add device");
  main.append(
    h("div", { class: "title" }, h("h1", null, "Devices"), addBtn),
    formSlot,
    msg,
    h("div", { class: "toolbar" }, field("Filter by name", filter)),
    list,
  );

  async function load(): Promise<void> {
    try {
      const r = await coreApi.listDevices({ pageSize: 1000, nameFilter: filter.value.trim() });
      if (!r.result.length) {
        replace(list, h("p", { class: "empty" }, filter.value ? "No device matches." : "No devices yet. Add one to get started."));
        return;
      }
      replace(
        list,
        h(
          "table",
          { "aria-label": "Devices" },
          h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Id"), h("th", null, "Description"), admin ? h("th", null, "Owner") : null, h("th", null, "Created"), h("th", null, h("span", { class: "sr" }, "Actions")))),
          h(
            "tbody",
            null,
            r.result.map((d) =>
              h(
                "tr",
                { "data-device": String(d.id) },
                h("td", null, link(`/devices/${d.id}`, d.name)),
                h("td", { class: "num" }, String(d.id)),
                h("td", null, d.description),
                admin ? h("td", { class: "num" }, String(d.ownerId)) : null,
                h("td", null, fmtTime(tsDate(d.createTime))),
                h("td", null, link(`/devices/${d.id}`, "View")),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      replace(list, h("p", { class: "error", role: "alert" }, errorText(e)));
    }
  }

  let timer = 0;
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(load, 250);
  });

  function showForm(): void {
    const name = h("input", { name: "name", maxlength: "200", required: true });
    const desc = h("textarea", { name: "description", rows: "2", maxlength: "2000" });
    const f = form({
      label: "Add device",
      submit: "Add",
      fields: [field("Name", name, "Unique among your devices, up to 200 characters."), field("Description", desc)],
      check: () => (invalid(name, !name.value.trim()) ? "Give the device a name." : null),
      run: async () => {
        const r = await coreApi.createDevice({ name: name.value.trim(), description: desc.value.trim() });
        replace(formSlot);
        addBtn.hidden = false;
        msg.replaceChildren(`Device “${r.result!.name}” created (id ${r.result!.id}). `, link(`/devices/${r.result!.id}`, "View it"), " to add sensors and download its key.");
        await load();
      },
      cancel: () => {
        replace(formSlot);
        addBtn.hidden = false;
        addBtn.focus();
      },
    });
    replace(formSlot, f);
    addBtn.hidden = true;
    name.focus();
  }

  await load();
  void navigate;
}
