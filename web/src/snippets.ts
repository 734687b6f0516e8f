// "Connect this device": ready-to-paste commands and programs pre-filled
// with this platform's addresses, the device id, a sensor id and, on
// request, the device key. e2e/console tests paste and run them.
import { consoleConfig, core } from "./api";

export interface SnippetInput {
  deviceId: string;
  sensorId: string;
  valueType: core.ValueType;
  /** The device key, or undefined to read it from the downloaded file. */
  token?: string;
}

export interface Snippet {
  id: string;
  label: string;
  lang: string;
  text: string;
}

function sample(t: core.ValueType): { json: string; go: string; ts: string; py: string; grpc: string; cli: string } {
  switch (t) {
    case core.ValueType.LONG:
      return { json: "42", go: "LongValue{LongValue: 42}", ts: '{ case: "longValue", value: 42n }', py: "long_value=42", grpc: '"long_value":"42"', cli: "42" };
    case core.ValueType.BOOLEAN:
      return { json: "true", go: "BoolValue{BoolValue: true}", ts: '{ case: "boolValue", value: true }', py: "bool_value=True", grpc: '"bool_value":true', cli: "true" };
    case core.ValueType.STRING:
      return { json: '"on"', go: 'StringValue{StringValue: "on"}', ts: '{ case: "stringValue", value: "on" }', py: 'string_value="on"', grpc: '"string_value":"on"', cli: "on" };
    case core.ValueType.OBJECT:
      return { json: '{"x":1.5}', go: "", ts: "", py: "", grpc: '"object_value":{"x":1.5}', cli: '{"x":1.5}' };
    default:
      return { json: "21.5", go: "DoubleValue{DoubleValue: 21.5}", ts: '{ case: "doubleValue", value: 21.5 }', py: "double_value=21.5", grpc: '"double_value":21.5', cli: "21.5" };
  }
}

/** Addresses the device-facing listeners are reached at from this browser. */
export function endpoints(): { host: string; http: string; ws: string; mqttHost: string; mqttPort: string; api: string; apiHost: string; tls: boolean } {
  const c = consoleConfig();
  const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
  const tls = location.protocol === "https:";
  return {
    host,
    http: `${tls ? "https" : "http"}://${host}:${c.http ?? "8083"}/`,
    ws: `${tls ? "wss" : "ws"}://${host}:${c.ws ?? "8765"}/`,
    mqttHost: location.hostname,
    mqttPort: c.mqtt ?? "1883",
    api: location.origin,
    apiHost: location.host,
    tls,
  };
}

export function snippets(i: SnippetInput): Snippet[] {
  const e = endpoints();
  const v = sample(i.valueType);
  const keyFile = `device-${i.deviceId}-key.json`;
  const tokenLine = i.token ? `TOKEN='${i.token}'` : `TOKEN=$(jq -r .token ${keyFile})   # the key downloaded from this page`;
  const reading = `{"sensor_id":"${i.sensorId}","value":${v.json}}`;
  const out: Snippet[] = [
    {
      id: "curl",
      label: "curl (HTTP)",
      lang: "bash",
      text: `${tokenLine}\ncurl -s -X POST -H "Content-Type: application/json" -H "authorization: Bearer $TOKEN" \\\n  -d '${reading}' ${e.http}`,
    },
    {
      id: "mosquitto",
      label: "mosquitto_pub (MQTT)",
      lang: "bash",
      text: `${tokenLine}\nmosquitto_pub -h ${e.mqttHost} -p ${e.mqttPort}${e.tls ? " --capath /etc/ssl/certs" : ""} -q 1 -u JWT -P "$TOKEN" \\\n  -t ${i.deviceId} -m '${reading}'`,
    },
    {
      id: "websocket",
      label: "WebSocket (JavaScript)",
      lang: "js",
      text:
        `// In a browser console or Node 22+ (global WebSocket).\n` +
        `const token = ${i.token ? JSON.stringify(i.token) : `"<device key from ${keyFile}>"`};\n` +
        `const ws = new WebSocket(${JSON.stringify(e.ws)}, ["bearer", token]);\n` +
        `ws.onopen = () => ws.send(JSON.stringify(${reading}));\n` +
        `ws.onmessage = (m) => { console.log(m.data); ws.close(); };`,
    },
    {
      id: "grpcurl",
      label: "grpcurl (gRPC stream)",
      lang: "bash",
      text: `${tokenLine}\ngrpcurl ${e.tls ? "" : "-plaintext "}-H "authorization: Bearer $TOKEN" \\\n  -d '{"sequence":"1","readings":[{"sensor_id":"${i.sensorId}",${v.grpc}}]}' \\\n  ${e.apiHost} iot.ingest.v1.IngestService/IngestStream`,
    },
    {
      id: "iotctl",
      label: "iotctl",
      lang: "bash",
      text: `${tokenLine}\nIOT_API=${e.api} IOT_TOKEN=$TOKEN bin/iotctl push ${i.sensorId} '${v.cli}'`,
    },
  ];
  if (v.go) {
    out.push(
      {
        id: "go",
        label: "Go SDK",
        lang: "go",
        // A whole program: main.go in a module that requires the SDK (docs/SDK.md), then `go run .`.
        text:
          `// main.go — go get github.com/iotplatform/iotplatform/sdk/go/iot (docs/SDK.md), then: go run .\n` +
          `package main\n\nimport (\n\t"context"\n\t"log"\n${i.token ? "" : '\t"os"\n'}\n` +
          `\tingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"\n\t"github.com/iotplatform/iotplatform/sdk/go/iot"\n)\n\n` +
          `func main() {\n` +
          `\tdevice := iot.New(${JSON.stringify(e.api)}, iot.WithToken(${i.token ? JSON.stringify(i.token) : "os.Getenv(\"TOKEN\")"}))\n` +
          `\t_, err := device.Ingest.Ingest(context.Background(), &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{{\n` +
          `\t\tSensorId: ${i.sensorId}, Value: &ingestv1.Reading_${v.go}}}})\n` +
          `\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n}`,
      },
      {
        id: "ts",
        label: "TypeScript SDK",
        lang: "ts",
        text:
          `import { createClient } from "@iotplatform/sdk";\n` +
          `const device = createClient(${JSON.stringify(e.api)}, { token: ${i.token ? JSON.stringify(i.token) : "process.env.TOKEN"} });\n` +
          `await device.ingest.ingest({ readings: [{ sensorId: ${i.sensorId}n, value: ${v.ts} }] });`,
      },
      {
        id: "python",
        label: "Python SDK",
        lang: "python",
        text:
          `import os\nfrom iotplatform import Client, ingest_pb2\n\n` +
          `with Client(${JSON.stringify(e.apiHost)}, token=${i.token ? JSON.stringify(i.token) : 'os.environ["TOKEN"]'}) as device:\n` +
          `    device.ingest.Ingest(ingest_pb2.IngestRequest(readings=[\n` +
          `        ingest_pb2.Reading(sensor_id=${i.sensorId}, ${v.py})]))`,
      },
    );
  }
  return out;
}
