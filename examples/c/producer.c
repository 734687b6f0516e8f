/*
 * Sample producer for iotplatform in C, written the way firmware would be:
 * no heap, fixed buffers, the reading batch encoded with nanopb as the
 * protobuf iot.ingest.v1.ReadingBatch and POSTed to the HTTP gateway as
 * application/x-protobuf with the device key as bearer token.
 *
 * The transport is plain POSIX sockets here (on a microcontroller: lwIP,
 * the modem's AT socket, ...); encode_batch() is the part that moves to
 * the device unchanged.
 *
 * Configuration (environment, or arguments --key K --sensor-id S --count N):
 *   IOT_HTTP_URL   gateway URL, default http://localhost:8083/
 *   IOT_DEVICE_KEY the device key (token); IOT_TOKEN is accepted too
 *   IOT_SENSOR_ID  a double sensor of the device
 *   IOT_COUNT      readings to send (default 10, at most 16), one batch
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <pb_encode.h>

#include "iot/ingest/v1/ingest.pb.h"

#define MAX_BODY 1024
#define MAX_REQUEST 4096

/* encode_batch fills buf with a ReadingBatch of count readings of the
 * sensor: values 20.0, 20.5, ... at consecutive milliseconds from now_ms.
 * Returns the encoded length, or -1. */
static int encode_batch(uint8_t *buf, size_t size, int64_t sensor_id, int count, int64_t now_ms)
{
    iot_ingest_v1_ReadingBatch batch = iot_ingest_v1_ReadingBatch_init_zero;
    if (count < 1 || count > (int)(sizeof(batch.readings) / sizeof(batch.readings[0]))) {
        return -1;
    }
    batch.readings_count = (pb_size_t)count;
    for (int i = 0; i < count; i++) {
        iot_ingest_v1_Reading *r = &batch.readings[i];
        int64_t ms = now_ms + i;
        r->sensor_id = sensor_id;
        r->has_timestamp = true;
        r->timestamp.seconds = ms / 1000;
        r->timestamp.nanos = (int32_t)(ms % 1000) * 1000000;
        r->which_value = iot_ingest_v1_Reading_double_value_tag;
        r->value.double_value = 20.0 + 0.5 * i;
    }
    pb_ostream_t out = pb_ostream_from_buffer(buf, size);
    if (!pb_encode(&out, iot_ingest_v1_ReadingBatch_fields, &batch)) {
        fprintf(stderr, "producer: encode: %s\n", PB_GET_ERROR(&out));
        return -1;
    }
    return (int)out.bytes_written;
}

/* parse_url splits http://host[:port][/path] into its parts. */
static int parse_url(const char *url, char *host, size_t hsize, char *port, size_t psize, char *path, size_t pathsize)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        return -1;
    }
    p += 7;
    const char *end = p + strcspn(p, ":/");
    if (end == p || (size_t)(end - p) >= hsize) {
        return -1;
    }
    memcpy(host, p, (size_t)(end - p));
    host[end - p] = '\0';
    snprintf(port, psize, "80");
    if (*end == ':') {
        const char *q = end + 1;
        size_t n = strcspn(q, "/");
        if (n == 0 || n >= psize) {
            return -1;
        }
        memcpy(port, q, n);
        port[n] = '\0';
        end = q + n;
    }
    snprintf(path, pathsize, "%s", *end ? end : "/");
    return 0;
}

/* post sends body and prints the gateway's answer; returns the HTTP status. */
static int post(const char *url, const char *key, const uint8_t *body, int len)
{
    char host[256], port[8], path[256];
    static char req[MAX_REQUEST];
    if (parse_url(url, host, sizeof host, port, sizeof port, path, sizeof path) != 0) {
        fprintf(stderr, "producer: IOT_HTTP_URL %s: want http://host[:port]/\n", url);
        return -1;
    }
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "producer: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            break;
        }
        if (fd >= 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "producer: connect %s:%s: %s\n", host, port, strerror(errno));
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-protobuf\r\n"
                     "authorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                     path, host, port, key, len);
    if (n < 0 || n + len > (int)sizeof req) {
        fprintf(stderr, "producer: request too large\n");
        close(fd);
        return -1;
    }
    memcpy(req + n, body, (size_t)len);
    for (int sent = 0; sent < n + len;) {
        ssize_t w = send(fd, req + sent, (size_t)(n + len - sent), 0);
        if (w <= 0) {
            fprintf(stderr, "producer: send: %s\n", strerror(errno));
            close(fd);
            return -1;
        }
        sent += (int)w;
    }
    static char resp[MAX_REQUEST];
    int got = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - (size_t)got, 0);
        if (r <= 0) {
            break;
        }
        got += (int)r;
        if (got == (int)sizeof resp - 1) {
            break;
        }
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "producer: no HTTP answer\n");
        return -1;
    }
    const char *answer = strstr(resp, "\r\n\r\n");
    printf("HTTP %d %s\n", status, answer ? answer + 4 : "");
    return status;
}

static const char *getenv2(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (v == NULL || *v == '\0') {
        v = getenv(b);
    }
    return (v != NULL && *v != '\0') ? v : NULL;
}

int main(int argc, char **argv)
{
    const char *url = getenv("IOT_HTTP_URL");
    const char *key = getenv2("IOT_DEVICE_KEY", "IOT_TOKEN");
    const char *sensor = getenv("IOT_SENSOR_ID");
    const char *count_s = getenv("IOT_COUNT");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--key") == 0) {
            key = argv[i + 1];
        } else if (strcmp(argv[i], "--sensor-id") == 0) {
            sensor = argv[i + 1];
        } else if (strcmp(argv[i], "--count") == 0) {
            count_s = argv[i + 1];
        } else if (strcmp(argv[i], "--url") == 0) {
            url = argv[i + 1];
        } else {
            fprintf(stderr, "producer: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (url == NULL || *url == '\0') {
        url = "http://localhost:8083/";
    }
    if (key == NULL || sensor == NULL) {
        fprintf(stderr, "usage: IOT_DEVICE_KEY=... IOT_SENSOR_ID=... producer [--count N] [--url URL]\n");
        return 2;
    }
    char *end;
    long long sensor_id = strtoll(sensor, &end, 10);
    int count = count_s ? atoi(count_s) : 10;
    if (*end != '\0' || sensor_id <= 0) {
        fprintf(stderr, "producer: sensor id %s is not a number\n", sensor);
        return 2;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;

    static uint8_t body[MAX_BODY];
    int len = encode_batch(body, sizeof body, sensor_id, count, now_ms);
    if (len < 0) {
        fprintf(stderr, "producer: cannot encode %d readings (1 to 16)\n", count);
        return 2;
    }
    printf("sending %d readings of sensor %lld (%d bytes of protobuf) to %s\n", count, sensor_id, len, url);
    return post(url, key, body, len) == 200 ? 0 : 1;
}
