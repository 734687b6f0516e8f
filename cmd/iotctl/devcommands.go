package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// commandCommand is `iotctl command`: commands to devices and device state
// (docs/COMMANDS.md).
func (a *app) commandCommand() *cobra.Command {
	var ttl, wait time.Duration
	send := &cobra.Command{Use: "send DEVICE NAME [JSON]", Short: "Send a command to a device (JSON: its payload)", Args: nArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args[:1])
			if err != nil {
				return err
			}
			req := &commandv1.SendCommandRequest{DeviceId: ids[0], Name: args[1]}
			if len(args) > 2 {
				v := &structpb.Value{}
				if !json.Valid([]byte(args[2])) || protojson.Unmarshal([]byte(args[2]), v) != nil {
					return usageErr(cmd, "payload %q is not JSON", args[2])
				}
				req.Payload = &commandv1.SendCommandRequest_JsonPayload{JsonPayload: v}
			}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			if wait > 0 {
				req.Wait = durationpb.New(wait)
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) { return c.Command.SendCommand(ctx, req) })
		}}
	send.Flags().DurationVar(&ttl, "ttl", 0, "time to live (default: the server's, 1h)")
	send.Flags().DurationVar(&wait, "wait", 0, "wait this long for the device's answer (at most 60s; raise --timeout too)")
	list := &cobra.Command{Use: "list DEVICE", Short: "List a device's commands with their status history", Args: nArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args)
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c *iot.Client) (any, error) {
				return c.Command.ListCommands(ctx, &commandv1.ListCommandsRequest{DeviceId: ids[0], PageSize: 1000})
			})
		}}
	return group("command", "Send commands to devices and read their state (send, get, list, cancel, state)", send, list,
		a.idCommand("get", "Show a command with its status history", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Command.GetCommand(ctx, &commandv1.GetCommandRequest{Id: id})
		}),
		a.idCommand("cancel", "Cancel a command not answered yet", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Command.CancelCommand(ctx, &commandv1.CancelCommandRequest{Id: id})
		}),
		a.idCommand("state", "Show a device's state: online, last seen, reported and desired attributes", func(ctx context.Context, c *iot.Client, id int64) (any, error) {
			return c.Command.GetDeviceState(ctx, &commandv1.GetDeviceStateRequest{DeviceId: id})
		}),
	)
}
