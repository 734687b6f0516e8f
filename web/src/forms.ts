// Shared form behaviour: one error region per form, a busy button, and
// errors from the API shown in words next to the form.
import { errorText } from "./api";
import { h, type Child } from "./dom";

export interface FormOpts {
  label: string;
  submit: string;
  fields: Child[];
  /** Checks input before calling the API; return a message to refuse. */
  check?: () => string | null;
  run: () => Promise<void>;
  cancel?: () => void;
}

export function form(o: FormOpts): HTMLFormElement {
  const err = h("p", { class: "error", role: "alert" });
  const btn = h("button", { type: "submit" }, o.submit);
  const f = h(
    "form",
    {
      class: "card",
      "aria-label": o.label,
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = "";
        const bad = o.check?.();
        if (bad) {
          err.textContent = bad;
          focusFirstInvalid(f);
          return;
        }
        btn.disabled = true;
        try {
          await o.run();
        } catch (x) {
          err.textContent = errorText(x);
        } finally {
          btn.disabled = false;
        }
      },
    },
    h("h2", null, o.label),
    o.fields,
    err,
    h("div", { class: "actions" }, btn, o.cancel ? h("button", { type: "button", class: "secondary", onclick: o.cancel }, "Cancel") : null),
  );
  return f;
}

function focusFirstInvalid(f: HTMLFormElement): void {
  const el = f.querySelector<HTMLInputElement>("[aria-invalid=true]") ?? f.querySelector<HTMLInputElement>("input,select,textarea");
  el?.focus();
}

/** Marks a control invalid (for screen readers and styling) and returns msg. */
export function invalid(el: HTMLElement, bad: boolean): boolean {
  if (bad) el.setAttribute("aria-invalid", "true");
  else el.removeAttribute("aria-invalid");
  return bad;
}

/** Asks before doing something that cannot be undone; resolves true on confirm. */
export function confirmDialog(title: string, body: Child[], confirm: string): Promise<boolean> {
  return new Promise((resolve) => {
    const d = h("dialog", { class: "confirm", "aria-labelledby": "dlg-title" });
    const done = (ok: boolean) => {
      d.close();
      d.remove();
      resolve(ok);
    };
    d.append(
      h("h2", { id: "dlg-title" }, title),
      h("div", null, body),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirm),
        h("button", { type: "button", class: "secondary", autofocus: true, onclick: () => done(false) }, "Cancel"),
      ),
    );
    d.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(d);
    d.showModal();
  });
}

/** A status line that announces results politely. */
export function status(): HTMLParagraphElement {
  return h("p", { class: "status", role: "status", "aria-live": "polite" });
}
