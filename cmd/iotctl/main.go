// Command iotctl administers an iotplatform and reads its data from the
// shell, through the Go SDK (sdk/go/iot).
//
//	export IOT_API=http://localhost:8080
//	export IOT_TOKEN=$(IOT_PASSWORD=... iotctl login root)
//	iotctl devices create car "my car"
//	iotctl sensors create 1 speed double
//	iotctl latest 1
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

const usage = `usage: iotctl [--api URL] [--token TOKEN] COMMAND [ARGS]

  login USERNAME                      print a user token (password from $IOT_PASSWORD or stdin) and keep
                                      the session in $XDG_CONFIG_HOME/iotctl/session.json (0600)
  devices list | create NAME [DESC] | get ID | delete ID | key ID | rotate-key ID | tree ID
  devices import [--keys] [--batch N] FILE|-   create devices with sensors from CSV or JSON (see docs/CORE.md)
  sensors list DEVICE | create DEVICE NAME TYPE [PATH]    (TYPE: double, long, boolean, string, object)
  consumers list | create NAME | key ID | grant ID SENSOR | revoke ID SENSOR
  push SENSOR VALUE                   push one reading (the token must be a device key)
  readings SENSOR [LIMIT]             newest readings first
  latest SENSOR...                    the last reading of each sensor

The API URL and token default to $IOT_API (http://localhost:8080) and $IOT_TOKEN. Without a token, or
with the one login printed, the stored session is used and its 15-minute user token renewed with the
refresh token when it expires.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "iotctl:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("iotctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	api := fs.String("api", env("IOT_API", "http://localhost:8080"), "API base URL ($IOT_API)")
	token := fs.String("token", os.Getenv("IOT_TOKEN"), "user, consumer or device token ($IOT_TOKEN)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprint(out, usage)
		if err == nil {
			err = errors.New("missing command")
		}
		return err
	}
	timeout := 30 * time.Second
	if fs.NArg() > 1 && fs.Arg(0) == "devices" && fs.Arg(1) == "import" {
		timeout = time.Hour // many batches
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path, err := sessionPath()
	if err != nil {
		return err
	}
	sess, err := loadSession(path)
	if err != nil && fs.Arg(0) != "login" {
		return err
	}
	cred, resumed := sess.clientOptions(*api, *token)
	c := iot.New(*api, cred)
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "login" {
		return login(ctx, c, *api, path, rest, stdin, out)
	}
	if resumed {
		defer func() {
			if err := sess.update(path, c); err != nil {
				fmt.Fprintln(os.Stderr, "iotctl:", err)
			}
		}()
	}
	var msg proto.Message
	switch cmd {
	case "devices":
		if len(rest) > 0 && rest[0] == "import" {
			msg, err = importDevices(ctx, c, rest[1:], stdin)
		} else {
			msg, err = devices(ctx, c, rest)
		}
	case "sensors":
		msg, err = sensors(ctx, c, rest)
	case "consumers":
		msg, err = consumers(ctx, c, rest)
	case "push":
		msg, err = push(ctx, c, rest)
	case "readings":
		msg, err = readings(ctx, c, rest)
	case "latest":
		var ids []int64
		if ids, err = intArgs(rest, 1); err == nil {
			msg, err = c.Query.Latest(ctx, &queryv1.LatestRequest{SensorId: ids})
		}
	default:
		fmt.Fprint(out, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// login signs in, prints the user token and stores the session (with its
// refresh token) for later runs.
func login(ctx context.Context, c *iot.Client, api, path string, args []string, stdin io.Reader, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: iotctl login USERNAME")
	}
	pw := os.Getenv("IOT_PASSWORD")
	if pw == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return errors.New("password: set $IOT_PASSWORD or pipe it on stdin")
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if err := c.SignIn(ctx, args[0], pw); err != nil {
		return err
	}
	tok, rt, exp := c.Session()
	s := &session{API: api, LoginToken: tok, Token: tok, RefreshToken: rt, ExpireTime: exp}
	if err := s.save(path); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, tok)
	return err
}

// intArgs parses args as ids, requiring at least min.
func intArgs(args []string, min int) ([]int64, error) {
	if len(args) < min {
		return nil, fmt.Errorf("want at least %d id(s)", min)
	}
	ids := make([]int64, len(args))
	for i, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an id", a)
		}
		ids[i] = id
	}
	return ids, nil
}

func id(args []string, usage string) (int64, error) {
	if len(args) < 1 {
		return 0, errors.New("usage: " + usage)
	}
	ids, err := intArgs(args[:1], 1)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

func devices(ctx context.Context, c *iot.Client, args []string) (proto.Message, error) {
	if len(args) == 0 {
		return nil, errors.New("usage: iotctl devices list|create|get|delete|key|rotate-key|tree")
	}
	sub, rest := args[0], args[1:]
	if sub == "list" {
		return c.Core.ListDevices(ctx, &corev1.ListDevicesRequest{PageSize: 1000})
	}
	if sub == "create" {
		if len(rest) < 1 {
			return nil, errors.New("usage: iotctl devices create NAME [DESCRIPTION]")
		}
		req := &corev1.CreateDeviceRequest{Name: rest[0]}
		if len(rest) > 1 {
			req.Description = rest[1]
		}
		return c.Core.CreateDevice(ctx, req)
	}
	d, err := id(rest, "iotctl devices "+sub+" ID")
	if err != nil {
		return nil, err
	}
	switch sub {
	case "get":
		return c.Core.GetDevice(ctx, &corev1.GetDeviceRequest{Id: d})
	case "delete":
		return c.Core.DeleteDevice(ctx, &corev1.DeleteDeviceRequest{Id: d})
	case "key":
		return c.Core.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: d})
	case "rotate-key":
		return c.Core.RotateDeviceKey(ctx, &corev1.RotateDeviceKeyRequest{Id: d})
	case "tree":
		return c.Core.GetDeviceTree(ctx, &corev1.GetDeviceTreeRequest{Id: d})
	}
	return nil, fmt.Errorf("unknown devices command %q", sub)
}

func sensors(ctx context.Context, c *iot.Client, args []string) (proto.Message, error) {
	if len(args) == 0 {
		return nil, errors.New("usage: iotctl sensors list|create")
	}
	d, err := id(args[1:], "iotctl sensors "+args[0]+" DEVICE ...")
	if err != nil {
		return nil, err
	}
	switch args[0] {
	case "list":
		return c.Core.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: d})
	case "create":
		if len(args) < 4 {
			return nil, errors.New("usage: iotctl sensors create DEVICE NAME TYPE [PATH]")
		}
		req := &corev1.CreateSensorRequest{DeviceId: d, Name: args[2], Mapping: `{"type":"` + args[3] + `"}`}
		if len(args) > 4 {
			req.Path = args[4]
		}
		return c.Core.CreateSensor(ctx, req)
	}
	return nil, fmt.Errorf("unknown sensors command %q", args[0])
}

func consumers(ctx context.Context, c *iot.Client, args []string) (proto.Message, error) {
	if len(args) == 0 {
		return nil, errors.New("usage: iotctl consumers list|create|key|grant|revoke")
	}
	switch args[0] {
	case "list":
		return c.Core.ListConsumers(ctx, &corev1.ListConsumersRequest{PageSize: 1000})
	case "create":
		if len(args) < 2 {
			return nil, errors.New("usage: iotctl consumers create NAME")
		}
		return c.Core.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: args[1]})
	}
	ids, err := intArgs(args[1:], 1)
	if err != nil {
		return nil, err
	}
	switch {
	case args[0] == "key":
		return c.Core.GetConsumerKey(ctx, &corev1.GetConsumerKeyRequest{Id: ids[0]})
	case args[0] == "grant" && len(ids) == 2:
		return c.Core.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: ids[0], SensorId: ids[1]})
	case args[0] == "revoke" && len(ids) == 2:
		return c.Core.RevokeSensor(ctx, &corev1.RevokeSensorRequest{ConsumerId: ids[0], SensorId: ids[1]})
	}
	return nil, fmt.Errorf("usage: iotctl consumers key ID | grant ID SENSOR | revoke ID SENSOR")
}

func push(ctx context.Context, c *iot.Client, args []string) (proto.Message, error) {
	if len(args) != 2 {
		return nil, errors.New("usage: iotctl push SENSOR VALUE")
	}
	s, err := id(args, "iotctl push SENSOR VALUE")
	if err != nil {
		return nil, err
	}
	r := &ingestv1.Reading{SensorId: s}
	v := args[1]
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		r.Value = &ingestv1.Reading_DoubleValue{DoubleValue: f}
	} else if b, err := strconv.ParseBool(v); err == nil {
		r.Value = &ingestv1.Reading_BoolValue{BoolValue: b}
	} else if obj := new(structpb.Struct); strings.HasPrefix(v, "{") && protojson.Unmarshal([]byte(v), obj) == nil {
		r.Value = &ingestv1.Reading_ObjectValue{ObjectValue: obj}
	} else {
		r.Value = &ingestv1.Reading_StringValue{StringValue: v}
	}
	return c.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{r}})
}

func readings(ctx context.Context, c *iot.Client, args []string) (proto.Message, error) {
	s, err := id(args, "iotctl readings SENSOR [LIMIT]")
	if err != nil {
		return nil, err
	}
	req := &queryv1.ListReadingsRequest{SensorId: s, Limit: 100, Order: queryv1.Order_ORDER_DESC}
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return nil, fmt.Errorf("limit %q is not a number", args[1])
		}
		req.Limit = int32(n)
	}
	return c.Query.ListReadings(ctx, req)
}
