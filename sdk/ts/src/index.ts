/**
 * TypeScript SDK of iotplatform: typed clients for CoreService, IngestService
 * and QueryService over Connect (default), gRPC-Web or any Connect transport
 * (e.g. gRPC from @connectrpc/connect-node), with the bearer token handled for
 * you.
 *
 *     const iot = createClient("http://localhost:8080");
 *     await iot.signIn("root", password);
 *     const { result } = await iot.core.createDevice({ name: "car" });
 *
 * The generated messages are re-exported as the namespaces `core`, `ingest`
 * and `query` (e.g. `core.ValueType.DOUBLE`).
 */
import { Code, ConnectError, createClient as createConnectClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";

import { CoreService } from "./gen/iot/core/v1/core_pb.js";
import type { SignInResponse } from "./gen/iot/core/v1/core_pb.js";
import { IngestService } from "./gen/iot/ingest/v1/ingest_pb.js";
import { QueryService } from "./gen/iot/query/v1/query_pb.js";
import { CommandService, DeviceService } from "./gen/iot/command/v1/command_pb.js";
import { RulesService } from "./gen/iot/rules/v1/rules_pb.js";

export * as core from "./gen/iot/core/v1/core_pb.js";
export * as ingest from "./gen/iot/ingest/v1/ingest_pb.js";
export * as query from "./gen/iot/query/v1/query_pb.js";
export * as command from "./gen/iot/command/v1/command_pb.js";
export * as rules from "./gen/iot/rules/v1/rules_pb.js";
export { CoreService, IngestService, QueryService, CommandService, DeviceService, RulesService };
export { Code, ConnectError } from "@connectrpc/connect";

/** Builds the transport a client uses; the interceptors must be installed on it. */
export type TransportFactory = (options: { baseUrl: string; interceptors: Interceptor[] }) => Transport;

/**
 * A signed-in user session: the short-lived user token, the one-use refresh
 * token and the token's expiry. Save it (`client.session`, JSON-friendly
 * through `JSON.stringify`) and resume it with the `session` option.
 */
export interface Session {
  token: string;
  refreshToken: string;
  /** When the user token expires; absent: renew at the first call. */
  expires?: Date;
}

/** A session to resume: `expires` may also be an ISO string or epoch milliseconds (e.g. after JSON.parse). */
export interface SessionInit {
  token: string;
  refreshToken: string;
  expires?: Date | string | number;
}

/** How long before its expiry a user token is renewed (at most half its lifetime). */
const refreshMarginMs = 30_000;

/** The public session procedures: sent without the token, they never trigger a renewal. */
const sessionMethods = new Set(["SignIn", "RefreshToken", "SignOut"]);

/** Options of createClient. */
export interface ClientOptions {
  /** Token to send: a user, device or consumer JWT. */
  token?: string;
  /** A saved session to resume (see IotClient.session); takes precedence over `token`. */
  session?: SessionInit;
  /**
   * Protocol of the built-in fetch transport (browsers, Node >= 18):
   * "connect" (default) or "grpc-web". Ignored when `transport` is set.
   */
  protocol?: "connect" | "grpc-web";
  /**
   * Builds another transport, e.g. gRPC over HTTP/2 in Node:
   * `({ baseUrl, interceptors }) => createGrpcTransport({ baseUrl, interceptors })`
   * with createGrpcTransport from @connectrpc/connect-node.
   */
  transport?: TransportFactory;
  /** Extra interceptors, run after the one that sets the bearer token. */
  interceptors?: Interceptor[];
}

/** A client of one platform. Every call carries the current token. */
export interface IotClient {
  /** Users, devices, sensors, consumers, grants and keys. */
  readonly core: Client<typeof CoreService>;
  /** Readings sent as a device. */
  readonly ingest: Client<typeof IngestService>;
  /** Stored and live readings. */
  readonly query: Client<typeof QueryService>;
  /** Commands to devices and device state (docs/COMMANDS.md). */
  readonly command: Client<typeof CommandService>;
  /** Rules, alerts and retention (docs/RULES.md). */
  readonly rules: Client<typeof RulesService>;
  /** The token sent with every call, if any. */
  token: string | undefined;
  /**
   * Signs in as a user and keeps the token for later calls. The user token is
   * short-lived (15 minutes by default); the client keeps the refresh token
   * and renews the user token before a call when it expires within 30 s,
   * until the session ends (signOut, or a failed renewal).
   */
  signIn(username: string, password: string): Promise<SignInResponse>;
  /**
   * Trades the refresh token for a new user token and refresh token now
   * (calls do it on their own). Concurrent renewals share one request. A
   * failure ends the session: the refresh token is forgotten.
   */
  refresh(): Promise<void>;
  /** Revokes the refresh token and forgets the session (the token too). */
  signOut(): Promise<void>;
  /** The current session to save and resume with the `session` option; undefined without a token. */
  readonly session: Session | undefined;
  /** Returns a client on the same transport settings that sends another token. */
  withToken(token: string | undefined): IotClient;
}

/** Returns a client for the API at baseUrl (e.g. http://localhost:8080). */
export function createClient(baseUrl: string, options: ClientOptions = {}): IotClient {
  const resumed = options.session;
  const state: {
    token: string | undefined;
    refreshToken: string | undefined;
    expires: number | undefined; // epoch ms; undefined with a refresh token: renew now
    marginMs: number;
    renewing: Promise<void> | undefined;
  } = {
    token: resumed ? resumed.token : options.token,
    refreshToken: resumed?.refreshToken || undefined,
    expires: resumed?.expires === undefined ? undefined : new Date(resumed.expires).getTime(),
    marginMs: refreshMarginMs,
    renewing: undefined,
  };
  const keep = (resp: { token: string; refreshToken: string; expireTime?: Timestamp }) => {
    const expires = resp.expireTime ? timestampDate(resp.expireTime).getTime() : undefined;
    state.token = resp.token;
    state.refreshToken = resp.refreshToken || undefined;
    state.expires = expires;
    state.marginMs =
      expires === undefined ? refreshMarginMs : Math.min(refreshMarginMs, Math.max(expires - Date.now(), 0) / 2);
  };
  const due = () =>
    state.refreshToken !== undefined && (state.expires === undefined || state.expires - Date.now() < state.marginMs);
  // renew starts one renewal, or joins the one in flight.
  const renew = (): Promise<void> => {
    if (state.renewing) return state.renewing;
    const refreshToken = state.refreshToken;
    if (!refreshToken) {
      return Promise.reject(new ConnectError("no refresh token (sign in first)", Code.Unauthenticated));
    }
    state.renewing = (async () => {
      try {
        keep(await core.refreshToken({ refreshToken }));
      } catch (err) {
        state.refreshToken = undefined; // used up or revoked either way
        state.expires = undefined;
        throw err;
      } finally {
        state.renewing = undefined;
      }
    })();
    return state.renewing;
  };
  const bearer: Interceptor = (next) => async (req) => {
    if (req.service.typeName === CoreService.typeName && sessionMethods.has(req.method.name)) {
      return next(req); // public: an expired token sent along would only be refused
    }
    if (state.renewing || due()) {
      // A failure is left to the call itself, which then gets Unauthenticated.
      await renew().catch(() => undefined);
    }
    if (state.token) {
      req.header.set("Authorization", `Bearer ${state.token}`);
    }
    return next(req);
  };
  const interceptors = [bearer, ...(options.interceptors ?? [])];
  const transport = options.transport
    ? options.transport({ baseUrl, interceptors })
    : options.protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl, interceptors })
      : createConnectTransport({ baseUrl, interceptors });
  const core = createConnectClient(CoreService, transport);
  return {
    core,
    ingest: createConnectClient(IngestService, transport),
    query: createConnectClient(QueryService, transport),
    command: createConnectClient(CommandService, transport),
    rules: createConnectClient(RulesService, transport),
    get token() {
      return state.token;
    },
    set token(t: string | undefined) {
      state.token = t;
    },
    get session(): Session | undefined {
      if (!state.token) return undefined;
      return {
        token: state.token,
        refreshToken: state.refreshToken ?? "",
        expires: state.expires === undefined ? undefined : new Date(state.expires),
      };
    },
    async signIn(username: string, password: string) {
      const resp = await core.signIn({ username, password });
      keep(resp);
      return resp;
    },
    refresh: renew,
    async signOut() {
      await state.renewing?.catch(() => undefined);
      const refreshToken = state.refreshToken;
      state.token = state.refreshToken = state.expires = undefined;
      if (refreshToken) {
        await core.signOut({ refreshToken });
      }
    },
    withToken(token: string | undefined) {
      return createClient(baseUrl, { ...options, token, session: undefined });
    },
  };
}

/** Signs in at baseUrl and returns a client that carries the user's token. */
export async function signIn(
  baseUrl: string,
  username: string,
  password: string,
  options: Omit<ClientOptions, "token" | "session"> = {},
): Promise<IotClient> {
  const client = createClient(baseUrl, options);
  await client.signIn(username, password);
  return client;
}

export {
  IotPlatform,
  Devices,
  Sensors,
  Consumers,
  type Id,
  type Value,
  type SensorType,
  type Time,
  type Reading,
  type Bucket,
  type NewReading,
  type Device,
  type Sensor,
  type Consumer,
} from "./platform.js";
