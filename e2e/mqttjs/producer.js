// producer.js publishes readings the way the original platform's Node.js
// producer does: mqtt.js, protocol MQTT 3.1 ("MQIsdp") unless told
// otherwise, QoS 0 (mqtt.js's default), arrays of readings built in the same
// millisecond with nanosecond timestamps, and it ends the connection as soon
// as the last publish is written.
//
// usage: node producer.js <mqtt-url> <token> <device_id> <sensor_id> <arrays> <first_value> [protocolVersion]
// Array i (0-based) holds 2 + i%4 readings; values count up from first_value.
// It prints the number of readings published.
const mqtt = require("mqtt");

const [url, token, device, sensor, arraysArg, firstArg, versionArg] = process.argv.slice(2);
const arrays = Number(arraysArg);
let value = Number(firstArg);
const version = Number(versionArg || 3);

const client = mqtt.connect(url, {
  username: "JWT",
  password: token,
  keepalive: 1000,
  protocolId: version === 3 ? "MQIsdp" : "MQTT",
  protocolVersion: version,
  reconnectPeriod: 0,
});
client.on("error", (err) => {
  console.error("mqtt error:", err.message);
  process.exit(1);
});
client.on("connect", () => {
  let sent = 0;
  for (let i = 0; i < arrays; i++) {
    const ms = Date.now();
    const readings = [];
    for (let k = 0; k < 2 + (i % 4); k++) {
      // the same millisecond, as nanoseconds: the readings share an instant
      readings.push({ sensor_id: sensor, timestamp: ms * 1e6, value: value++ });
    }
    client.publish(device, JSON.stringify(readings));
    sent += readings.length;
  }
  client.end(false, () => {
    console.log(sent);
  });
});
