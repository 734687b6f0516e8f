package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
)

func (a *app) tailCommand() *cobra.Command {
	var since string
	var count int
	var dur time.Duration
	cmd := &cobra.Command{
		Use:   "tail SENSOR...",
		Short: "Print readings as they arrive (QueryService Subscribe)",
		Long: `Print the sensors' readings as they are stored, until interrupted (Ctrl-C), --count readings
or --for elapses. -o json prints one JSON object a line (JSON Lines), table and csv one row
a reading. --since replays stored readings from that time first (RFC 3339 or epoch ms).`,
		Args: nArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(cmd, args)
			if err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, dur)
				defer cancel()
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := c.Query.Subscribe(ctx, &queryv1.SubscribeRequest{SensorId: ids, Since: since})
			if err != nil {
				return err
			}
			defer stream.Close()
			cols := []string{"sensor_id", "device_id", "timestamp", "value"}
			header := true
			seen := 0
			line := protojson.MarshalOptions{UseProtoNames: true}
			for stream.Receive() {
				for _, r := range stream.Msg().GetReadings() {
					if a.output == formatJSON {
						b, err := line.Marshal(r)
						if err != nil {
							return err
						}
						fmt.Fprintln(a.out, string(b))
					} else {
						_, rows := messageRows(r)
						if err := writeRows(a.out, a.output, cols, rows, header); err != nil {
							return err
						}
						header = false
					}
					seen++
					if count > 0 && seen >= count {
						return nil
					}
				}
			}
			err = stream.Err()
			if dur > 0 && (errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeDeadlineExceeded) {
				return nil
			}
			if cmd.Context().Err() != nil { // interrupted
				return nil
			}
			if err == nil {
				return errors.New("tail: the server ended the stream")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "replay stored readings from this time first (RFC 3339 or epoch ms)")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many readings (0: no limit)")
	cmd.Flags().DurationVar(&dur, "for", 0, "exit after this long (0: until interrupted)")
	return cmd
}
