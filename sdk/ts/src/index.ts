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
import { createClient as createConnectClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
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

/** Options of createClient. */
export interface ClientOptions {
  /** Token to send: a user, device or consumer JWT. */
  token?: string;
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
  /** Signs in as a user and keeps the token for later calls. */
  signIn(username: string, password: string): Promise<SignInResponse>;
  /** Returns a client on the same transport settings that sends another token. */
  withToken(token: string | undefined): IotClient;
}

/** Returns a client for the API at baseUrl (e.g. http://localhost:8080). */
export function createClient(baseUrl: string, options: ClientOptions = {}): IotClient {
  const state = { token: options.token };
  const bearer: Interceptor = (next) => async (req) => {
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
    async signIn(username: string, password: string) {
      const resp = await core.signIn({ username, password });
      state.token = resp.token;
      return resp;
    },
    withToken(token: string | undefined) {
      return createClient(baseUrl, { ...options, token });
    },
  };
}

/** Signs in at baseUrl and returns a client that carries the user's token. */
export async function signIn(
  baseUrl: string,
  username: string,
  password: string,
  options: Omit<ClientOptions, "token"> = {},
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
