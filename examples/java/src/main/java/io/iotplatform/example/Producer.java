package io.iotplatform.example;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

import org.eclipse.paho.client.mqttv3.MqttClient;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.MqttMessage;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;

/**
 * Sample producer for iotplatform in Java: pushes readings of one sensor over
 * HTTP (java.net.http) or MQTT (Eclipse Paho), like the original platform's
 * Java producer.
 *
 * <pre>
 *   IOT_DEVICE_ID=... IOT_DEVICE_KEY=... IOT_SENSOR_ID=... java -jar target/producer.jar mqtt
 * </pre>
 *
 * HTTP answers 200 {"accepted": 1} once the reading is durable; MQTT publishes
 * with QoS 1, whose PUBACK the platform sends once the reading is durable.
 */
public final class Producer {
    private final String deviceId;
    private final String key;
    private final String sensorId;
    private final int count;
    private final long intervalMs;
    private final String httpUrl;
    private final String mqttUrl;

    private Producer(Map<String, String> o) {
        deviceId = o.get("device-id");
        key = o.get("key");
        sensorId = o.get("sensor-id");
        count = Integer.parseInt(o.get("count"));
        intervalMs = (long) (Double.parseDouble(o.get("interval")) * 1000);
        httpUrl = o.get("http-url");
        // Paho Java names plain MQTT over TCP tcp://.
        mqttUrl = o.get("mqtt-url").replaceFirst("^mqtt://", "tcp://");
    }

    /** reading returns reading i as the gateways' JSON, at a distinct millisecond. */
    private String reading(int i) {
        long ts = System.currentTimeMillis() + i;
        double value = 20.0 + 0.5 * i;
        return String.format(Locale.ROOT, "{\"sensor_id\":\"%s\",\"timestamp\":%d,\"value\":%s}", sensorId, ts, value);
    }

    private void sendHttp() throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        for (int i = 0; i < count; i++) {
            HttpRequest req = HttpRequest.newBuilder(URI.create(httpUrl))
                    .timeout(Duration.ofSeconds(10))
                    .header("Content-Type", "application/json")
                    .header("authorization", "Bearer " + key)
                    .POST(HttpRequest.BodyPublishers.ofString(reading(i), StandardCharsets.UTF_8))
                    .build();
            HttpResponse<String> resp = client.send(req, HttpResponse.BodyHandlers.ofString());
            if (resp.statusCode() != 200) {
                throw new IllegalStateException("http " + resp.statusCode() + " " + resp.body());
            }
            System.out.println("http " + resp.statusCode() + " " + resp.body());
            Thread.sleep(intervalMs);
        }
    }

    private void sendMqtt() throws MqttException, InterruptedException {
        MqttClient client = new MqttClient(mqttUrl, "java-producer-" + deviceId, new MemoryPersistence());
        MqttConnectOptions opts = new MqttConnectOptions();
        opts.setUserName("JWT"); // username JWT, password the device key
        opts.setPassword(key.toCharArray());
        opts.setCleanSession(true);
        opts.setConnectionTimeout(10);
        opts.setMqttVersion(MqttConnectOptions.MQTT_VERSION_3_1_1);
        client.connect(opts);
        try {
            for (int i = 0; i < count; i++) {
                MqttMessage msg = new MqttMessage(reading(i).getBytes(StandardCharsets.UTF_8));
                msg.setQos(1);
                client.publish(deviceId, msg); // the topic is the device id; returns after the PUBACK
                System.out.println("mqtt puback");
                Thread.sleep(intervalMs);
            }
        } finally {
            client.disconnect();
            client.close();
        }
    }

    private static String env(String name, String def) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? def : v;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new HashMap<>();
        o.put("protocol", env("IOT_PROTOCOL", "http"));
        o.put("device-id", env("IOT_DEVICE_ID", null));
        o.put("key", env("IOT_DEVICE_KEY", env("IOT_TOKEN", null)));
        o.put("sensor-id", env("IOT_SENSOR_ID", null));
        o.put("count", env("IOT_COUNT", "10"));
        o.put("interval", env("IOT_INTERVAL", "1"));
        o.put("http-url", env("IOT_HTTP_URL", "http://localhost:8083/"));
        o.put("mqtt-url", env("IOT_MQTT_URL", "mqtt://localhost:1883"));
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("--") && i + 1 < args.length && o.containsKey(args[i].substring(2))) {
                o.put(args[i].substring(2), args[++i]);
            } else if (!args[i].startsWith("--")) {
                o.put("protocol", args[i]);
            } else {
                usage("unknown argument " + args[i]);
            }
        }
        String protocol = o.get("protocol");
        if (o.get("key") == null || o.get("sensor-id") == null || ("mqtt".equals(protocol) && o.get("device-id") == null)) {
            usage("set IOT_DEVICE_KEY and IOT_SENSOR_ID (and IOT_DEVICE_ID for MQTT)");
        }
        Producer p = new Producer(o);
        switch (protocol) {
            case "http" -> p.sendHttp();
            case "mqtt" -> p.sendMqtt();
            default -> usage("protocol " + protocol + ": want http or mqtt");
        }
        System.out.println("sent " + p.count + " readings over " + protocol);
    }

    private static void usage(String msg) {
        System.err.println("producer: " + msg);
        System.err.println("usage: java -jar target/producer.jar [http|mqtt] [--key K] [--sensor-id S] [--device-id D] [--count N]");
        System.exit(2);
    }
}
