// The console's one way to the platform: the public API through the
// generated clients of @iotplatform/sdk over Connect (connect-web, fetch).
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { CommandService, CoreService, QueryService, core } from "@iotplatform/sdk";

export { core };
export { query } from "@iotplatform/sdk";

/** What the console remembers of a sign-in, in sessionStorage only. */
export interface Session {
  token: string;
  /** Epoch ms when the token stops working. */
  expires: number;
  userId: string;
  username: string;
  admin: boolean;
}

const KEY = "iotplatform.session";
let session: Session | null = load();
let onExpired: (msg: string) => void = () => {};

function load(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
    return s && typeof s.token === "string" ? s : null;
  } catch {
    return null;
  }
}

export function current(): Session | null {
  return session;
}

export function setSession(s: Session | null): void {
  session = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/** Called when the API says the token is no longer valid. */
export function whenExpired(fn: (msg: string) => void): void {
  onExpired = fn;
}

export const EXPIRED = "Your session has expired. Sign in again to continue.";

const bearer: Interceptor = (next) => async (req) => {
  if (session) req.header.set("Authorization", `Bearer ${session.token}`);
  try {
    return await next(req);
  } catch (e) {
    if (session && e instanceof ConnectError && e.code === Code.Unauthenticated && req.method.name !== "SignIn") {
      setSession(null);
      onExpired(EXPIRED);
    }
    throw e;
  }
};

const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [bearer] });
export const coreApi: Client<typeof CoreService> = createClient(CoreService, transport);
export const queryApi: Client<typeof QueryService> = createClient(QueryService, transport);
export const commandApi: Client<typeof CommandService> = createClient(CommandService, transport);

/** Signs in and keeps the session. */
export async function signIn(username: string, password: string): Promise<Session> {
  const r = await coreApi.signIn({ username, password });
  const u = r.user;
  const s: Session = {
    token: r.token,
    expires: r.expireTime ? Number(r.expireTime.seconds) * 1000 : Date.now() + 15 * 60_000,
    userId: String(u?.id ?? ""),
    username: u?.username ?? username,
    admin: u?.role === core.Role.ADMIN,
  };
  setSession(s);
  return s;
}

export async function signOut(): Promise<void> {
  setSession(null);
}

/** Turns any error into a sentence for people (never raw JSON). */
export function errorText(e: unknown): string {
  if (e instanceof ConnectError) {
    const m = e.rawMessage ? sentence(e.rawMessage) : "";
    switch (e.code) {
      case Code.InvalidArgument:
      case Code.FailedPrecondition:
      case Code.OutOfRange:
        return m || "The platform refused the input.";
      case Code.AlreadyExists:
        return m ? `Already exists: ${m}` : "Something with that name already exists.";
      case Code.NotFound:
        return m ? `Not found: ${m}` : "It does not exist (any more).";
      case Code.PermissionDenied:
        if (/disabled/i.test(m)) return m; // SignIn of a disabled account: the platform's sentence says it all
        return `You are not allowed to do that${m ? `: ${m}` : "."}`;
      case Code.Unauthenticated:
        return m && /password|username|credential/i.test(m) ? m : EXPIRED;
      case Code.ResourceExhausted:
        return `Too many requests — wait a moment and try again${m ? ` (${m})` : "."}`;
      case Code.Unavailable:
        return "The platform cannot be reached right now. Check that it is running and try again.";
      case Code.DeadlineExceeded:
        return "The platform took too long to answer. Try again.";
      case Code.Unimplemented:
        return "This platform does not offer that function (a role may be missing).";
      default:
        return m ? `The platform failed: ${m}` : "The platform failed to answer. Try again.";
    }
  }
  if (e instanceof Error) return sentence(e.message);
  return "Something went wrong.";
}

function sentence(s: string): string {
  s = s.trim();
  return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s;
}

/** Timestamp → Date. */
export function tsDate(t: { seconds: bigint; nanos: number } | undefined): Date | undefined {
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : undefined;
}

/** A reading's value as number (NaN when not numeric). */
export function numeric(r: { value: { case: string | undefined; value?: unknown } }): number {
  const v = r.value;
  switch (v.case) {
    case "doubleValue":
      return v.value as number;
    case "longValue":
      return Number(v.value as bigint);
    case "boolValue":
      return v.value ? 1 : 0;
    default:
      return NaN;
  }
}

/** A reading's value as text. */
export function valueText(r: { value: { case: string | undefined; value?: unknown } }): string {
  const v = r.value;
  switch (v.case) {
    case undefined:
      return "—";
    case "objectValue":
      return JSON.stringify(v.value ? toJson(v.value) : null);
    default:
      return String(v.value);
  }
}

function toJson(s: unknown): unknown {
  // google.protobuf.Struct as plain JSON (fields → values).
  const val = (x: { kind: { case: string | undefined; value?: unknown } }): unknown => {
    switch (x.kind.case) {
      case "structValue":
        return toJson(x.kind.value);
      case "listValue":
        return (x.kind.value as { values: never[] }).values.map(val);
      case "nullValue":
        return null;
      default:
        return x.kind.value;
    }
  };
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries((s as { fields: Record<string, never> }).fields ?? {})) out[k] = val(x);
  return out;
}

/** Console settings the server puts into index.html (device-facing addresses). */
export interface ConsoleConfig {
  http?: string;
  ws?: string;
  mqtt?: string;
  api?: string;
}

export function consoleConfig(): ConsoleConfig {
  const m = document.querySelector<HTMLMetaElement>('meta[name="iot-console"]');
  try {
    return JSON.parse(m?.content || "{}") as ConsoleConfig;
  } catch {
    return {};
  }
}
