/**
 * The ergonomic client: plain methods over the generated Connect clients.
 *
 *     const iot = new IotPlatform("http://localhost:8080");
 *     await iot.signIn("root", password);
 *     const dev = await iot.devices.create({ name: "car" });
 *     const sensor = await iot.sensors.create(dev.id, { name: "speed", type: "double" });
 *     const device = await iot.asDevice(dev.id);
 *     await device.ingest(sensor.id, 88.5, new Date());
 *     for await (const r of iot.subscribe(sensor.id, { signal })) console.log(r.time, r.value);
 *     const rows = await iot.query(sensor.id, { from: new Date(Date.now() - 3600_000) });
 *
 * The generated clients stay reachable as `iot.rpc.core`, `iot.rpc.ingest`
 * and `iot.rpc.query` for everything not wrapped here.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";

import { createClient, type ClientOptions, type IotClient, type Session } from "./index.js";
import { ValueType } from "./gen/iot/core/v1/core_pb.js";
import type { Consumer, Device, Sensor, SignInResponse } from "./gen/iot/core/v1/core_pb.js";
import type { Reading as IngestReading } from "./gen/iot/ingest/v1/ingest_pb.js";
import { Order } from "./gen/iot/query/v1/query_pb.js";
import type { Reading as QueryReading } from "./gen/iot/query/v1/query_pb.js";

export type { Consumer, Device, Sensor };

/** An id: the API's 64-bit ids are bigint; numbers and decimal strings are accepted. */
export type Id = bigint | number | string;

/** A reading's value, typed like its sensor. */
export type Value = number | bigint | boolean | string | JsonObject;

/** The value types of a sensor. */
export type SensorType = "double" | "long" | "boolean" | "string" | "object";

/** A time: a Date, epoch milliseconds, or an RFC 3339 string. */
export type Time = Date | number | string;

/** A stored or live reading. */
export interface Reading {
  sensorId: bigint;
  deviceId: bigint;
  /** Measurement time (millisecond precision; `nanos` has the rest). */
  time: Date;
  /** Nanoseconds within the second of `time`. */
  nanos: number;
  value: Value | undefined;
}

/** One interval of an aggregate; absent functions are undefined. */
export interface Bucket {
  start: Date;
  count: bigint;
  avg?: number;
  min?: number;
  max?: number;
  sum?: number;
  first?: number;
  last?: number;
}

/** One reading to send as a device. */
export interface NewReading {
  sensorId: Id;
  value: Value;
  /** Measurement time; absent means the server's receive time. */
  timestamp?: Time;
}

const valueTypes: Record<SensorType, ValueType> = {
  double: ValueType.DOUBLE,
  long: ValueType.LONG,
  boolean: ValueType.BOOLEAN,
  string: ValueType.STRING,
  object: ValueType.OBJECT,
};

function id(v: Id): bigint {
  return typeof v === "bigint" ? v : BigInt(v);
}

function timeString(t: Time): string {
  if (t instanceof Date) return t.toISOString();
  if (typeof t === "number") return String(Math.trunc(t));
  return t;
}

function timeDate(t: Time): Date {
  return t instanceof Date ? t : new Date(t);
}

function readingValue(v: Value): IngestReading["value"] {
  switch (typeof v) {
    case "number":
      return { case: "doubleValue", value: v };
    case "bigint":
      return { case: "longValue", value: v };
    case "boolean":
      return { case: "boolValue", value: v };
    case "string":
      return { case: "stringValue", value: v };
    default:
      return { case: "objectValue", value: v as never };
  }
}

function toReading(r: QueryReading): Reading {
  const ts = r.timestamp;
  return {
    sensorId: r.sensorId,
    deviceId: r.deviceId,
    time: ts ? timestampDate(ts) : new Date(0),
    nanos: ts ? ts.nanos : 0,
    value: r.value.case === undefined ? undefined : (r.value.value as Value),
  };
}

/** Users' devices. */
export class Devices {
  constructor(private readonly c: IotClient) {}
  /** Registers a device owned by the caller. */
  async create(d: { name: string; description?: string; labels?: Record<string, string> }): Promise<Device> {
    return (await this.c.core.createDevice(d)).result!;
  }
  /** Lists the caller's devices (every page), optionally by name. */
  async list(opts: { nameFilter?: string } = {}): Promise<Device[]> {
    const out: Device[] = [];
    let pageToken = "";
    do {
      const page = await this.c.core.listDevices({ nameFilter: opts.nameFilter ?? "", pageToken, pageSize: 1000 });
      out.push(...page.result);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }
  async get(deviceId: Id): Promise<Device> {
    return (await this.c.core.getDevice({ id: id(deviceId) })).result!;
  }
  /** Deletes a device with its sensors and readings' registrations. */
  async delete(deviceId: Id): Promise<void> {
    await this.c.core.deleteDevice({ id: id(deviceId) });
  }
  /** The device's key: the token the device authenticates with. */
  async key(deviceId: Id): Promise<string> {
    return (await this.c.core.getDeviceKey({ id: id(deviceId) })).token;
  }
}

/** The sensors of a device. */
export class Sensors {
  constructor(private readonly c: IotClient) {}
  async create(
    deviceId: Id,
    s: { name: string; type: SensorType; unit?: string; description?: string; path?: string },
  ): Promise<Sensor> {
    const resp = await this.c.core.createSensor({
      deviceId: id(deviceId),
      name: s.name,
      valueType: valueTypes[s.type],
      unit: s.unit ?? "",
      description: s.description ?? "",
      path: s.path ?? "",
    });
    return resp.sensor!;
  }
  async list(deviceId: Id): Promise<Sensor[]> {
    return (await this.c.core.listSensors({ deviceId: id(deviceId) })).result;
  }
  async get(deviceId: Id, sensorId: Id): Promise<Sensor> {
    return (await this.c.core.getSensor({ deviceId: id(deviceId), id: id(sensorId) })).sensor!;
  }
  async delete(deviceId: Id, sensorId: Id): Promise<void> {
    await this.c.core.deleteSensor({ deviceId: id(deviceId), id: id(sensorId) });
  }
}

/** Read-only data consumers and their grants. */
export class Consumers {
  constructor(private readonly c: IotClient) {}
  async create(c: { name: string; description?: string }): Promise<Consumer> {
    return (await this.c.core.createConsumer(c)).result!;
  }
  /** Lists the caller's consumers (every page). */
  async list(): Promise<Consumer[]> {
    const out: Consumer[] = [];
    let pageToken = "";
    do {
      const page = await this.c.core.listConsumers({ pageToken, pageSize: 1000 });
      out.push(...page.result);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }
  async delete(consumerId: Id): Promise<void> {
    await this.c.core.deleteConsumer({ id: id(consumerId) });
  }
  /** Lets the consumer read the sensor; returns the consumer with its grants. */
  async grant(consumerId: Id, sensorId: Id): Promise<Consumer> {
    return (await this.c.core.grantSensor({ consumerId: id(consumerId), sensorId: id(sensorId) })).result!;
  }
  async revoke(consumerId: Id, sensorId: Id): Promise<void> {
    await this.c.core.revokeSensor({ consumerId: id(consumerId), sensorId: id(sensorId) });
  }
  /** The consumer's key: the token it reads with. */
  async key(consumerId: Id): Promise<string> {
    return (await this.c.core.getConsumerKey({ id: id(consumerId) })).token;
  }
}

/** A client of one platform with plain methods; see the module comment. */
export class IotPlatform {
  /** The generated Connect clients (`core`, `ingest`, `query`) on the same transport and token. */
  readonly rpc: IotClient;
  readonly devices: Devices;
  readonly sensors: Sensors;
  readonly consumers: Consumers;

  constructor(
    readonly baseUrl: string,
    private readonly options: ClientOptions = {},
  ) {
    this.rpc = createClient(baseUrl, options);
    this.devices = new Devices(this.rpc);
    this.sensors = new Sensors(this.rpc);
    this.consumers = new Consumers(this.rpc);
  }

  /** The token sent with every call (user, device or consumer), if any. */
  get token(): string | undefined {
    return this.rpc.token;
  }
  set token(t: string | undefined) {
    this.rpc.token = t;
  }

  /**
   * Signs in as a user; later calls carry the user's token, renewed with the
   * refresh token before it expires (within 30 s) until the session ends.
   */
  signIn(username: string, password: string): Promise<SignInResponse> {
    return this.rpc.signIn(username, password);
  }

  /** Renews the user token now (calls do it on their own); a failure ends the session. */
  refresh(): Promise<void> {
    return this.rpc.refresh();
  }

  /** Revokes the refresh token and forgets the session. */
  signOut(): Promise<void> {
    return this.rpc.signOut();
  }

  /** The session to save and resume with `new IotPlatform(url, { session })`. */
  get session(): Session | undefined {
    return this.rpc.session;
  }

  /** A client of the same platform and transport that sends another token. */
  withToken(token: string): IotPlatform {
    return new IotPlatform(this.baseUrl, { ...this.options, token, session: undefined });
  }

  /** A client acting as the device (its key fetched with this client's user token). */
  async asDevice(deviceId: Id): Promise<IotPlatform> {
    return this.withToken(await this.devices.key(deviceId));
  }

  /** A client acting as the consumer (its key fetched with this client's user token). */
  async asConsumer(consumerId: Id): Promise<IotPlatform> {
    return this.withToken(await this.consumers.key(consumerId));
  }

  /**
   * Sends one reading as a device and resolves once it is durable. Needs a
   * device token (asDevice); a refused reading rejects with a ConnectError
   * (e.g. Code.InvalidArgument for a value the sensor's type cannot take).
   */
  async ingest(sensorId: Id, value: Value, timestamp?: Time): Promise<void> {
    await this.ingestMany([{ sensorId, value, timestamp }]);
  }

  /** Sends a batch as a device (all or nothing); resolves to the number accepted. */
  async ingestMany(readings: NewReading[]): Promise<number> {
    const resp = await this.rpc.ingest.ingest({
      readings: readings.map((r) => ({
        sensorId: id(r.sensorId),
        timestamp: r.timestamp === undefined ? undefined : timestampFromDate(timeDate(r.timestamp)),
        value: readingValue(r.value),
      })),
    });
    return resp.accepted;
  }

  /**
   * Live readings of the sensors as an async iterator, from `since` on
   * (stored readings first), until `signal` aborts or the loop breaks.
   * `onLive` is called once the subscription is live, before any reading:
   * every reading stored from then on is delivered, whatever its timestamp
   * (start producing there).
   */
  async *subscribe(
    sensorIds: Id | Id[],
    opts: { since?: Time; signal?: AbortSignal; onLive?: () => void } = {},
  ): AsyncGenerator<Reading> {
    const ids = (Array.isArray(sensorIds) ? sensorIds : [sensorIds]).map(id);
    const since = opts.since === undefined ? "" : timeString(opts.since);
    let live = false;
    try {
      for await (const msg of this.rpc.query.subscribe({ sensorId: ids, since }, { signal: opts.signal })) {
        if (!live) {
          live = true; // the server's first message confirms the subscription
          opts.onLive?.();
        }
        for (const r of msg.readings) yield toReading(r);
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw err;
    }
  }

  /**
   * Stored readings of a sensor in [from, to), oldest first (every page, up
   * to `limit` readings when set).
   */
  async query(
    sensorId: Id,
    opts: { from?: Time; to?: Time; limit?: number; newestFirst?: boolean } = {},
  ): Promise<Reading[]> {
    const out: Reading[] = [];
    let pageToken = "";
    do {
      const want = opts.limit === undefined ? 1000 : Math.min(1000, opts.limit - out.length);
      const page = await this.rpc.query.listReadings({
        sensorId: id(sensorId),
        from: opts.from === undefined ? "" : timeString(opts.from),
        to: opts.to === undefined ? "" : timeString(opts.to),
        limit: want,
        pageToken,
        order: opts.newestFirst ? Order.DESC : Order.ASC,
      });
      out.push(...page.readings.map(toReading));
      pageToken = page.nextPageToken;
    } while (pageToken && (opts.limit === undefined || out.length < opts.limit));
    return out;
  }

  /** Aggregates per interval (e.g. "1m", "1h") with the functions fn (avg, min, max, sum, count, first, last). */
  async aggregate(
    sensorId: Id,
    opts: { from?: Time; to?: Time; interval: string; fn?: string[] },
  ): Promise<Bucket[]> {
    const resp = await this.rpc.query.aggregate({
      sensorId: id(sensorId),
      from: opts.from === undefined ? "" : timeString(opts.from),
      to: opts.to === undefined ? "" : timeString(opts.to),
      interval: opts.interval,
      fn: opts.fn ?? [],
    });
    return resp.buckets.map((b) => ({
      start: b.start ? timestampDate(b.start) : new Date(0),
      count: b.count,
      avg: b.avg,
      min: b.min,
      max: b.max,
      sum: b.sum,
      first: b.first,
      last: b.last,
    }));
  }

  /** The latest reading of each sensor that has one. */
  async latest(sensorIds: Id | Id[]): Promise<Reading[]> {
    const ids = (Array.isArray(sensorIds) ? sensorIds : [sensorIds]).map(id);
    return (await this.rpc.query.latest({ sensorId: ids })).readings.map(toReading);
  }
}
