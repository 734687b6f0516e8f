// Routing, layout and the page contract shared by every page.
import { current, setSession, whenExpired } from "./api";
import { h, replace } from "./dom";
import { startHealth } from "./health";

export interface Page {
  /** The element pages render into. */
  main: HTMLElement;
  /** Path parameters matched by the route. */
  params: string[];
  query: URLSearchParams;
  /** Aborted when the user leaves the page (stop streams, timers). */
  signal: AbortSignal;
}

type Render = (p: Page) => Promise<void> | void;
interface Route {
  re: RegExp;
  title: string;
  render: Render;
  admin?: boolean;
  public?: boolean;
}

const routes: Route[] = [];
export function route(path: string, title: string, render: Render, opts: { admin?: boolean; public?: boolean } = {}): void {
  const re = new RegExp("^" + path.replace(/:\w+/g, "([^/]+)") + "/?$");
  routes.push({ re, title, render, ...opts });
}

let leave: AbortController | null = null;
let flashMsg: { text: string; kind: "info" | "error" } | null = null;

/** Shows a message on the next page rendered (e.g. after a redirect). */
export function flash(text: string, kind: "info" | "error" = "info"): void {
  flashMsg = { text, kind };
}

export function navigate(path: string, replaceState = false): void {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  void render();
}

/** Internal link: a real <a href> (keyboard, middle-click) routed in place. */
export function link(href: string, ...children: (Node | string)[]): HTMLAnchorElement {
  return h("a", { href }, ...children);
}

function onClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (!routes.some((r) => r.re.test(url.pathname))) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}

const root = () => document.getElementById("app")!;

export async function render(): Promise<void> {
  leave?.abort();
  leave = new AbortController();
  const signal = leave.signal;
  let path = location.pathname;
  if (path === "/" || path === "") path = "/devices";
  const s = current();
  if (s && s.expires <= Date.now()) {
    setSession(null);
    flash("Your session has expired. Sign in again to continue.", "error");
  }
  const r = routes.find((x) => x.re.test(path));
  if (!current() && !r?.public) {
    const back = location.pathname + location.search;
    history.replaceState(null, "", "/signin" + (back && back !== "/" && back !== "/signin" ? `?next=${encodeURIComponent(back)}` : ""));
    return render();
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  const top = r?.public ? null : header(path);
  replace(root(), top, main);
  const healthEl = top?.querySelector<HTMLElement>("#health");
  if (healthEl) startHealth(healthEl, signal);
  if (flashMsg) {
    main.appendChild(h("p", { class: `flash ${flashMsg.kind}`, role: flashMsg.kind === "error" ? "alert" : "status" }, flashMsg.text));
    flashMsg = null;
  }
  if (!r) {
    document.title = "Not found · iotplatform";
    main.appendChild(h("h1", null, "Page not found"));
    main.appendChild(h("p", null, "There is no console page at ", h("code", null, location.pathname), ". ", link("/devices", "Go to your devices"), "."));
    return;
  }
  if (r.admin && !current()?.admin) {
    document.title = "Not allowed · iotplatform";
    main.appendChild(h("h1", null, "Administrators only"));
    main.appendChild(h("p", null, "This page is for administrators. ", link("/devices", "Go to your devices"), "."));
    return;
  }
  document.title = `${r.title} · iotplatform`;
  const params = path.match(r.re)!.slice(1).map(decodeURIComponent);
  await r.render({ main, params, query: new URLSearchParams(location.search), signal });
  if (!r.public) main.focus({ preventScroll: true });
  // The first page is drawn and usable: the load benchmark waits for this mark.
  if (!performance.getEntriesByName("iot-console-interactive").length) performance.mark("iot-console-interactive");
}

function header(path: string): HTMLElement {
  const s = current()!;
  const nav: [string, string, boolean][] = [
    ["/devices", "Devices", true],
    ["/consumers", "Consumers", true],
    ["/charts", "Charts", true],
    ["/deadletters", "Dead letters", true],
    ["/users", "Users", s.admin],
  ];
  const items = nav
    .filter(([, , show]) => show)
    .map(([href, label]) => h("li", null, h("a", { href, "aria-current": path.startsWith(href) ? "page" : undefined }, label)));
  return h(
    "header",
    { class: "top" },
    h("a", { class: "brand", href: "/devices" }, "iotplatform"),
    h("nav", { "aria-label": "Main" }, h("ul", null, items)),
    h("div", { id: "health", class: "health", "aria-label": "Platform health" }),
    h(
      "div",
      { class: "who" },
      h("span", null, s.username, s.admin ? " (admin)" : ""),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            setSession(null);
            flash("You are signed out.");
            navigate("/signin");
          },
        },
        "Sign out",
      ),
    ),
  );
}

export function start(): void {
  document.addEventListener("click", onClick);
  window.addEventListener("popstate", () => void render());
  whenExpired((msg) => {
    flash(msg, "error");
    const back = location.pathname + location.search;
    navigate("/signin?next=" + encodeURIComponent(back), true);
  });
  // The token's own expiry sends the user to sign-in even when idle.
  setInterval(() => {
    const s = current();
    if (s && s.expires <= Date.now()) {
      setSession(null);
      flash("Your session has expired. Sign in again to continue.", "error");
      navigate("/signin?next=" + encodeURIComponent(location.pathname + location.search), true);
    }
  }, 5000);
  void render();
}
