#!/usr/bin/env python3
"""Sample producer for iotplatform: pushes readings of one sensor over HTTP,
WebSocket or MQTT, like the original platform's Python producer.

    IOT_DEVICE_ID=... IOT_DEVICE_KEY=... IOT_SENSOR_ID=... .venv/bin/python producer.py mqtt

Every reading is sent as the gateways' JSON ({"sensor_id", "timestamp",
"value"}) and counts only once the platform acknowledged it as durable:
HTTP 200 {"accepted": 1}, the WebSocket ack frame, the MQTT QoS 1 PUBACK.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def reading(sensor_id, i):
    # Milliseconds since the epoch, distinct per reading.
    return {"sensor_id": str(sensor_id), "timestamp": int(time.time() * 1000) + i, "value": 20.0 + 0.5 * i}


def send_http(args):
    for i in range(args.count):
        body = json.dumps(reading(args.sensor_id, i)).encode()
        req = urllib.request.Request(args.http_url, data=body, method="POST", headers={
            "Content-Type": "application/json", "authorization": "Bearer " + args.key})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                print("http", resp.status, resp.read().decode())
        except urllib.error.HTTPError as err:
            sys.exit("http %d %s" % (err.code, err.read().decode()))
        time.sleep(args.interval)


def send_ws(args):
    import websocket  # websocket-client

    ws = websocket.create_connection(args.ws_url, header=["authorization: Bearer " + args.key], timeout=10)
    try:
        for i in range(args.count):
            ws.send(json.dumps(reading(args.sensor_id, i)))
            ack = json.loads(ws.recv())  # one ack a message, in order, once durable
            print("ws", ack)
            if ack.get("status") != 200:
                sys.exit("ws: refused: %s" % ack)
            time.sleep(args.interval)
    finally:
        ws.close()


def send_mqtt(args):
    import paho.mqtt.client as mqtt
    from urllib.parse import urlparse

    u = urlparse(args.mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="py-producer-%s" % args.device_id,
                         protocol=mqtt.MQTTv311)
    client.username_pw_set("JWT", args.key)  # username JWT, password the device key
    client.connect(u.hostname or "localhost", u.port or 1883, keepalive=60)
    client.loop_start()
    try:
        for i in range(args.count):
            # The topic is the device id; QoS 1: the PUBACK comes once durable.
            info = client.publish(str(args.device_id), json.dumps(reading(args.sensor_id, i)), qos=1)
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                sys.exit("mqtt: no PUBACK for reading %d (rc %s)" % (i, info.rc))
            print("mqtt", "puback", info.mid)
            time.sleep(args.interval)
    finally:
        client.disconnect()
        client.loop_stop()


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("protocol", nargs="?", default=env("IOT_PROTOCOL", "http"), choices=["http", "ws", "mqtt"])
    p.add_argument("--device-id", default=env("IOT_DEVICE_ID"), help="device id (MQTT topic) [$IOT_DEVICE_ID]")
    p.add_argument("--key", default=env("IOT_DEVICE_KEY") or env("IOT_TOKEN"), help="device key [$IOT_DEVICE_KEY]")
    p.add_argument("--sensor-id", default=env("IOT_SENSOR_ID"), help="a double sensor of the device [$IOT_SENSOR_ID]")
    p.add_argument("--count", type=int, default=int(env("IOT_COUNT", "10")), help="readings to send [$IOT_COUNT]")
    p.add_argument("--interval", type=float, default=float(env("IOT_INTERVAL", "1")), help="seconds between readings [$IOT_INTERVAL]")
    p.add_argument("--http-url", default=env("IOT_HTTP_URL", "http://localhost:8083/"))
    p.add_argument("--ws-url", default=env("IOT_WS_URL", "ws://localhost:8765/"))
    p.add_argument("--mqtt-url", default=env("IOT_MQTT_URL", "mqtt://localhost:1883"))
    args = p.parse_args()
    if not args.key or not args.sensor_id or (args.protocol == "mqtt" and not args.device_id):
        p.error("set the device key and sensor id (and the device id for MQTT)")
    {"http": send_http, "ws": send_ws, "mqtt": send_mqtt}[args.protocol](args)
    print("sent %d readings over %s" % (args.count, args.protocol))


if __name__ == "__main__":
    main()
