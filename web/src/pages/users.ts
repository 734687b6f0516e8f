import { coreApi, core, current, errorText, tsDate } from "../api";
import { type Page } from "../app";
import { field, fmtTime, h, replace } from "../dom";
import { confirmDialog, form, invalid, status } from "../forms";

const USERNAME = /^[a-z0-9_]{3,30}$/;

/** Administrators: create users, change roles, reset passwords, disable and delete users. */
export async function usersPage({ main }: Page): Promise<void> {
  const msg = status();
  const list = h("div", { class: "list" });
  const formSlot = h("div");
  const addBtn = h("button", { type: "button", onclick: () => showCreate() }, "Add user");
  main.append(
    h("div", { class: "title" }, h("h1", null, "Users"), addBtn),
    h("p", { class: "lead" }, "Users manage their own devices and consumers; administrators see everything and manage users. A disabled user cannot sign in and is signed out within seconds; their devices and consumers keep working."),
    formSlot,
    msg,
    list,
  );

  async function load(): Promise<void> {
    try {
      const r = await coreApi.listUsers({ pageSize: 1000 });
      replace(
        list,
        h(
          "table",
          { "aria-label": "Users" },
          h("thead", null, h("tr", null, h("th", null, "Username"), h("th", null, "Id"), h("th", null, "Name"), h("th", null, "Role"), h("th", null, "Status"), h("th", null, "Created"), h("th", null, h("span", { class: "sr" }, "Actions")))),
          h(
            "tbody",
            null,
            r.result.map((u) =>
              h(
                "tr",
                { "data-user": u.username, class: u.disabled ? "disabled" : undefined },
                h("td", null, u.username),
                h("td", { class: "num" }, String(u.id)),
                h("td", null, u.displayName),
                h("td", null, u.role === core.Role.ADMIN ? "admin" : "user"),
                h("td", { "data-status": "" }, u.disabled ? "disabled" : "active"),
                h("td", null, fmtTime(tsDate(u.createTime))),
                h(
                  "td",
                  { class: "row-actions" },
                  h("button", { type: "button", class: "secondary", onclick: () => showReset(u) }, "Reset password"),
                  String(u.id) === current()?.userId
                    ? null
                    : h(
                        "button",
                        {
                          type: "button",
                          class: "secondary",
                          onclick: async () => {
                            try {
                              const role = u.role === core.Role.ADMIN ? core.Role.USER : core.Role.ADMIN;
                              await coreApi.updateUser({ id: u.id, role });
                              msg.textContent = `${u.username} is now ${role === core.Role.ADMIN ? "an administrator" : "a user"}.`;
                              await load();
                            } catch (e) {
                              msg.textContent = errorText(e);
                            }
                          },
                        },
                        u.role === core.Role.ADMIN ? "Make user" : "Make admin",
                      ),
                  String(u.id) === current()?.userId
                    ? null
                    : h("button", { type: "button", class: "secondary", onclick: () => setDisabled(u, !u.disabled) }, u.disabled ? "Enable" : "Disable"),
                  String(u.id) === current()?.userId ? null : h("button", { type: "button", class: "danger", onclick: () => remove(u) }, "Delete…"),
                ),
              ),
            ),
          ),
        ),
      );
    } catch (e) {
      replace(list, h("p", { class: "error", role: "alert" }, errorText(e)));
    }
  }

  function showCreate(): void {
    const name = h("input", { name: "username", autocomplete: "off" });
    const display = h("input", { name: "display_name" });
    const pw = h("input", { name: "password", type: "password", autocomplete: "new-password" });
    const role = h("select", { name: "role" }, h("option", { value: String(core.Role.USER) }, "user"), h("option", { value: String(core.Role.ADMIN) }, "admin"));
    const close = () => {
      replace(formSlot);
      addBtn.hidden = false;
      addBtn.focus();
    };
    replace(
      formSlot,
      form({
        label: "Add user",
        submit: "Add",
        fields: [field("Username", name, "3 to 30 characters: a–z, 0–9 and _."), field("Display name", display), field("Password", pw, "8 to 256 characters."), field("Role", role)],
        check: () => {
          if (invalid(name, !USERNAME.test(name.value.trim()))) return "The username must be 3 to 30 characters of a–z, 0–9 and _.";
          if (invalid(pw, pw.value.length < 8 || pw.value.length > 256)) return "The password must be 8 to 256 characters.";
          return null;
        },
        run: async () => {
          const r = await coreApi.createUser({ username: name.value.trim(), displayName: display.value.trim(), password: pw.value, role: Number(role.value) });
          close();
          msg.textContent = `User ${r.result!.username} created.`;
          await load();
        },
        cancel: close,
      }),
    );
    addBtn.hidden = true;
    name.focus();
  }

  function showReset(u: core.User): void {
    const pw = h("input", { name: "new_password", type: "password", autocomplete: "new-password" });
    const close = () => replace(formSlot);
    replace(
      formSlot,
      form({
        label: `Reset the password of ${u.username}`,
        submit: "Set password",
        fields: [field("New password", pw, "8 to 256 characters. Tell the user over a safe channel.")],
        check: () => (invalid(pw, pw.value.length < 8 || pw.value.length > 256) ? "The password must be 8 to 256 characters." : null),
        run: async () => {
          await coreApi.changePassword({ id: u.id, newPassword: pw.value });
          close();
          msg.textContent = `Password of ${u.username} reset.`;
        },
        cancel: close,
      }),
    );
    pw.focus();
  }

  async function setDisabled(u: core.User, disabled: boolean): Promise<void> {
    try {
      await coreApi.setUserDisabled({ id: u.id, disabled });
      msg.textContent = disabled ? `${u.username} is disabled: they cannot sign in any more.` : `${u.username} is enabled again.`;
      await load();
    } catch (e) {
      msg.textContent = errorText(e);
    }
  }

  async function remove(u: core.User): Promise<void> {
    const ok = await confirmDialog(`Delete ${u.username}?`, [h("p", null, "The user can no longer sign in. This cannot be undone.")], "Delete user");
    if (!ok) return;
    try {
      await coreApi.deleteUser({ id: u.id });
      msg.textContent = `User ${u.username} deleted.`;
      await load();
    } catch (e) {
      msg.textContent = errorText(e);
    }
  }
  await load();
}
