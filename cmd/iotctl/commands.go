package main

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// parseIDs parses args as ids.
func parseIDs(cmd *cobra.Command, args []string) ([]int64, error) {
	ids := make([]int64, len(args))
	for i, s := range args {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return nil, usageErr(cmd, "%q is not an id", s)
		}
		ids[i] = id
	}
	return ids, nil
}

// nArgs checks the number of arguments, printing the usage when wrong.
func nArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return usageErr(cmd, "%s: wrong number of arguments", cmd.CommandPath())
		}
		return nil
	}
}

// completeDevices offers the caller's device ids (with their names) for
// the first argument, asking the API with a short deadline.
func (a *app) completeDevices(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
	defer cancel()
	res, err := c.Core.ListDevices(ctx, &corev1.ListDevicesRequest{PageSize: 1000})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(res.GetResult()))
	for _, d := range res.GetResult() {
		out = append(out, strconv.FormatInt(d.GetId(), 10)+"\t"+d.GetName())
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// idCommand is a command taking one id and making one call with it.
func (a *app) idCommand(use, short string, fn func(ctx context.Context, c *iot.Client, id int64) (any, error)) *cobra.Command {
	return &cobra.Command{
		Use: use + " ID", Short: short, Args: nArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args)
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return fn(ctx, c, ids[0]) })
		},
	}
}

func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(cmd, "%s: missing command", cmd.CommandPath())
		}}
	c.AddCommand(subs...)
	return c
}

func (a *app) devicesCommand() *cobra.Command {
	list := &cobra.Command{Use: "list", Short: "List your devices", Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Core.ListDevices(ctx, &corev1.ListDevicesRequest{PageSize: 1000})
			})
		}}
	create := &cobra.Command{Use: "create NAME [DESCRIPTION]", Short: "Create a device", Args: nArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &corev1.CreateDeviceRequest{Name: args[0]}
			if len(args) > 1 {
				req.Description = args[1]
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return c.Core.CreateDevice(ctx, req) })
		}}
	devID := func(c *cobra.Command) *cobra.Command { c.ValidArgsFunction = a.completeDevices; return c }
	return group("devices", "Manage devices (list, create, get, delete, keys, tree, import)",
		list, create,
		devID(a.idCommand("get", "Show a device", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.GetDevice(ctx, &corev1.GetDeviceRequest{Id: id})
		})),
		devID(a.idCommand("delete", "Delete a device with its sensors", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.DeleteDevice(ctx, &corev1.DeleteDeviceRequest{Id: id})
		})),
		devID(a.idCommand("key", "Print the device's key (the token it pushes with)", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: id})
		})),
		devID(a.idCommand("rotate-key", "Issue a new device key; the old one stops working", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.RotateDeviceKey(ctx, &corev1.RotateDeviceKeyRequest{Id: id})
		})),
		devID(a.idCommand("tree", "Show the device's sensors as a tree of paths", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.GetDeviceTree(ctx, &corev1.GetDeviceTreeRequest{Id: id})
		})),
		a.importCommand(),
	)
}

var valueTypes = []string{"double", "long", "boolean", "string", "object"}

func (a *app) sensorsCommand() *cobra.Command {
	list := &cobra.Command{Use: "list DEVICE", Short: "List a device's sensors", Args: nArgs(1, 1), ValidArgsFunction: a.completeDevices,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args)
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Core.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: ids[0]})
			})
		}}
	create := &cobra.Command{Use: "create DEVICE NAME TYPE [PATH]", Short: "Create a sensor (TYPE: double, long, boolean, string, object)",
		Args: nArgs(3, 4),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return a.completeDevices(cmd, args, s)
			case 2:
				return valueTypes, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args[:1])
			if err != nil {
				return err
			}
			req := &corev1.CreateSensorRequest{DeviceId: ids[0], Name: args[1], Mapping: `{"type":"` + args[2] + `"}`}
			if len(args) > 3 {
				req.Path = args[3]
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return c.Core.CreateSensor(ctx, req) })
		}}
	return group("sensors", "Manage a device's sensors", list, create)
}

func (a *app) consumersCommand() *cobra.Command {
	list := &cobra.Command{Use: "list", Short: "List your consumers", Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Core.ListConsumers(ctx, &corev1.ListConsumersRequest{PageSize: 1000})
			})
		}}
	create := &cobra.Command{Use: "create NAME", Short: "Create a consumer (a read-only data client)", Args: nArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Core.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: args[0]})
			})
		}}
	pair := func(use, short string, fn func(ctx context.Context, c *iot.Client, consumer, sensor int64) (any, error)) *cobra.Command {
		return &cobra.Command{Use: use + " ID SENSOR", Short: short, Args: nArgs(2, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				ids, err := parseIDs(cmd, args)
				if err != nil {
					return err
				}
				return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return fn(ctx, c, ids[0], ids[1]) })
			}}
	}
	return group("consumers", "Manage consumers and their sensor grants", list, create,
		a.idCommand("key", "Print the consumer's key", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Core.GetConsumerKey(ctx, &corev1.GetConsumerKeyRequest{Id: id})
		}),
		pair("grant", "Let the consumer read a sensor", func(ctx context.Context, c *iot.Client, consumer, sensor int64) (any, error) {
			return c.Core.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: consumer, SensorId: sensor})
		}),
		pair("revoke", "Take a sensor grant back", func(ctx context.Context, c *iot.Client, consumer, sensor int64) (any, error) {
			return c.Core.RevokeSensor(ctx, &corev1.RevokeSensorRequest{ConsumerId: consumer, SensorId: sensor})
		}),
	)
}

// parseValue reads a reading's value from the command line: a number, a
// boolean, a JSON object, else a string.
func parseValue(v string) *ingestv1.Reading {
	r := &ingestv1.Reading{}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		r.Value = &ingestv1.Reading_DoubleValue{DoubleValue: f}
	} else if b, err := strconv.ParseBool(v); err == nil {
		r.Value = &ingestv1.Reading_BoolValue{BoolValue: b}
	} else if obj := new(structpb.Struct); strings.HasPrefix(v, "{") && protojson.Unmarshal([]byte(v), obj) == nil {
		r.Value = &ingestv1.Reading_ObjectValue{ObjectValue: obj}
	} else {
		r.Value = &ingestv1.Reading_StringValue{StringValue: v}
	}
	return r
}

func (a *app) pushCommand() *cobra.Command {
	return &cobra.Command{Use: "push SENSOR VALUE", Short: "Push one reading (the token must be the device's key)",
		Long: "Push one reading through IngestService. VALUE is a number, true/false, a JSON object or a string;\n" +
			"the platform coerces it to the sensor's type.", Args: nArgs(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args[:1])
			if err != nil {
				return err
			}
			r := parseValue(args[1])
			r.SensorId = ids[0]
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{r}})
			})
		}}
}

func (a *app) readingsCommand() *cobra.Command {
	var from, to string
	var asc bool
	cmd := &cobra.Command{Use: "readings SENSOR [LIMIT]", Short: "List a sensor's readings, newest first", Args: nArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args[:1])
			if err != nil {
				return err
			}
			req := &queryv1.ListReadingsRequest{SensorId: ids[0], Limit: 100, Order: queryv1.Order_ORDER_DESC, From: from, To: to}
			if asc {
				req.Order = queryv1.Order_ORDER_ASC
			}
			if len(args) > 1 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return usageErr(cmd, "limit %q is not a positive number", args[1])
				}
				req.Limit = int32(n)
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return c.Query.ListReadings(ctx, req) })
		}}
	cmd.Flags().StringVar(&from, "from", "", "oldest time (RFC 3339 or epoch milliseconds)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, exclusive (RFC 3339 or epoch milliseconds)")
	cmd.Flags().BoolVar(&asc, "asc", false, "oldest first")
	return cmd
}

func (a *app) latestCommand() *cobra.Command {
	return &cobra.Command{Use: "latest SENSOR...", Short: "Show the last reading of each sensor", Args: nArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args)
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Query.Latest(ctx, &queryv1.LatestRequest{SensorId: ids})
			})
		}}
}

// readLine reads one line (without its end) from the command's input.
func readLine(cmd *cobra.Command) (string, error) {
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
