// Sample producer for iotplatform in TypeScript (Node.js): pushes readings of
// one sensor over HTTP (fetch), WebSocket (ws) or MQTT (mqtt.js), like the
// original platform's Node.js producer.
//
//   IOT_DEVICE_ID=... IOT_DEVICE_KEY=... IOT_SENSOR_ID=... npm start -- mqtt
//
// MQTT publishes with mqtt.js's default QoS 0, as the original did (no
// acknowledgement: `--qos 1` waits for the PUBACK, sent once durable). HTTP
// answers {"accepted": n} and WebSocket sends one ack frame per message,
// both once the readings are durable.
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import WebSocket from "ws";

interface Reading {
  sensor_id: string;
  timestamp: number;
  value: number;
}

const env = process.env;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "device-id": { type: "string", default: env.IOT_DEVICE_ID },
    key: { type: "string", default: env.IOT_DEVICE_KEY ?? env.IOT_TOKEN },
    "sensor-id": { type: "string", default: env.IOT_SENSOR_ID },
    count: { type: "string", default: env.IOT_COUNT ?? "10" },
    interval: { type: "string", default: env.IOT_INTERVAL ?? "1" },
    qos: { type: "string", default: env.IOT_MQTT_QOS ?? "0" },
    "http-url": { type: "string", default: env.IOT_HTTP_URL ?? "http://localhost:8083/" },
    "ws-url": { type: "string", default: env.IOT_WS_URL ?? "ws://localhost:8765/" },
    "mqtt-url": { type: "string", default: env.IOT_MQTT_URL ?? "mqtt://localhost:1883" },
  },
});
const protocol = positionals[0] ?? env.IOT_PROTOCOL ?? "http";
const deviceId = values["device-id"];
const key = values.key;
const sensorId = values["sensor-id"];
const count = Number(values.count);
const intervalMs = Number(values.interval) * 1000;
const qos = Number(values.qos) as 0 | 1;

function fail(msg: string): never {
  console.error("producer:", msg);
  process.exit(1);
}

if (!key || !sensorId || (protocol === "mqtt" && !deviceId)) {
  fail("set IOT_DEVICE_KEY and IOT_SENSOR_ID (and IOT_DEVICE_ID for MQTT), or --key/--sensor-id/--device-id");
}
if (!["http", "ws", "mqtt"].includes(protocol)) fail(`protocol ${protocol}: want http, ws or mqtt`);
if (!Number.isInteger(count) || count < 1) fail(`count ${values.count}: want a positive integer`);
if (qos !== 0 && qos !== 1) fail(`qos ${values.qos}: want 0 or 1`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// reading i: milliseconds since the epoch, distinct per reading.
const reading = (i: number): Reading => ({ sensor_id: sensorId!, timestamp: Date.now() + i, value: 20 + 0.5 * i });

async function sendHTTP(): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await fetch(values["http-url"]!, {
      method: "POST",
      headers: { "Content-Type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(reading(i)),
    });
    const body = await res.text();
    if (res.status !== 200) fail(`http ${res.status} ${body}`);
    console.log("http", res.status, body);
    await sleep(intervalMs);
  }
}

async function sendWS(): Promise<void> {
  const ws = new WebSocket(values["ws-url"]!, { headers: { authorization: `Bearer ${key}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`ws upgrade refused: ${res.statusCode}`)));
  });
  const acks: string[] = [];
  let wake: (() => void) | undefined;
  ws.on("message", (data) => {
    acks.push(data.toString());
    wake?.();
  });
  for (let i = 0; i < count; i++) {
    ws.send(JSON.stringify(reading(i)));
    while (acks.length === 0) await new Promise<void>((r) => (wake = r)); // one ack a message, in order
    const ack = JSON.parse(acks.shift()!);
    if (ack.status !== 200) fail(`ws refused: ${JSON.stringify(ack)}`);
    console.log("ws", JSON.stringify(ack));
    await sleep(intervalMs);
  }
  ws.close(1000);
}

async function sendMQTT(): Promise<void> {
  // Username JWT and the device key as password; the topic is the device id.
  const client = await mqtt.connectAsync(values["mqtt-url"]!, {
    username: "JWT",
    password: key,
    clientId: `node-producer-${deviceId}`,
    reconnectPeriod: 0,
  });
  for (let i = 0; i < count; i++) {
    await client.publishAsync(deviceId!, JSON.stringify(reading(i)), { qos });
    console.log("mqtt", qos === 0 ? "published (QoS 0, no ack)" : "puback");
    await sleep(intervalMs);
  }
  await client.endAsync(); // flushes what is still queued
}

const send = { http: sendHTTP, ws: sendWS, mqtt: sendMQTT }[protocol as "http" | "ws" | "mqtt"];
send()
  .then(() => console.log(`sent ${count} readings over ${protocol}`))
  .catch((err) => fail(String(err)));
