// wsproducer.js sends readings the way a Node.js device on the `ws` library
// does, with its defaults (permessage-deflate offered, pings answered):
// arrays of readings built in the same millisecond without timestamps,
// every message sent at once without waiting for an ack, the last one in
// three fragments. It checks every ack (in order, index from 0, status
// 200), closes with 1000 and prints the number of readings accepted.
//
// usage: node wsproducer.js <ws-url> <token> <sensor_id> <arrays> <first_value>
// Array i (0-based) holds 2 + i%4 readings; values count up from first_value.
const WebSocket = require("ws");

const [url, token, sensor, arraysArg, firstArg] = process.argv.slice(2);
const arrays = Number(arraysArg);
let value = Number(firstArg);
let acks = 0;
let accepted = 0;

const fail = (...msg) => {
  console.error(...msg);
  process.exit(1);
};
const ws = new WebSocket(url, { headers: { authorization: "Bearer " + token } });
ws.on("error", (err) => fail("ws error:", err.message));
ws.on("open", () => {
  for (let i = 0; i < arrays; i++) {
    const readings = [];
    for (let k = 0; k < 2 + (i % 4); k++) {
      readings.push({ sensor_id: sensor, value: value++ });
    }
    const msg = JSON.stringify(readings);
    if (i < arrays - 1) {
      ws.send(msg);
      continue;
    }
    const third = Math.ceil(msg.length / 3);
    ws.send(msg.slice(0, third), { fin: false });
    ws.send(msg.slice(third, 2 * third), { fin: false });
    ws.send(msg.slice(2 * third), { fin: true });
  }
});
ws.on("message", (data) => {
  const ack = JSON.parse(data.toString());
  if (ack.index !== acks || ack.status !== 200) {
    fail("ack", data.toString(), "want index", acks, "status 200");
  }
  acks++;
  accepted += ack.accepted;
  if (acks === arrays) {
    ws.close(1000);
  }
});
ws.on("close", (code) => {
  if (acks !== arrays || code !== 1000) {
    fail("closed with", code, "after", acks, "acks of", arrays);
  }
  console.log(accepted);
});
