import { errorText, signIn } from "../api";
import { navigate, type Page } from "../app";
import { field, h } from "../dom";

export function signInPage({ main, query }: Page): void {
  const user = h("input", { name: "username", autocomplete: "username", required: true, autofocus: true });
  const pw = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const err = h("p", { class: "error", role: "alert", "aria-live": "assertive" });
  const btn = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card narrow",
      novalidate: true,
      "aria-labelledby": "signin-title",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = "";
        if (!user.value.trim() || !pw.value) {
          err.textContent = "Enter your username and password.";
          (user.value.trim() ? pw : user).focus();
          return;
        }
        btn.disabled = true;
        try {
          await signIn(user.value.trim(), pw.value);
          const next = query.get("next");
          navigate(next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin") ? next : "/devices", true);
        } catch (x) {
          err.textContent = errorText(x);
          pw.select();
          pw.focus();
        } finally {
          btn.disabled = false;
        }
      },
    },
    h("h1", { id: "signin-title" }, "Sign in to iotplatform"),
    field("Username", user),
    field("Password", pw, "On first start root's password is printed and kept in data/admin-password."),
    err,
    btn,
  );
  main.classList.add("center");
  main.appendChild(form);
  user.focus();
}
