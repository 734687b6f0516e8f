package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// importRow is one device to import and where it is in the input ("line 4"
// of a CSV file, "device 2" of a JSON array).
type importRow struct {
	dev   *corev1.DeviceImport
	where string
}

func (a *app) importCommand() *cobra.Command {
	var keys bool
	var batch int
	cmd := &cobra.Command{
		Use:   "import [--keys] [--batch N] FILE|-",
		Short: "Create devices with sensors from CSV or JSON (see docs/CORE.md)",
		Long: `FILE is CSV (a header row naming the columns external_id, name, description,
labels ("k=v;k2=v2"), sensor, type, unit, path; several rows with the same
external_id add sensors to one device) or JSON (an array of devices as in
ImportDevicesRequest.devices, or {"devices": [...]}). Devices go to the
platform in batches of --batch (at most 10000), each all or nothing; rows with
an external_id are never created twice, so rerunning a failed import is safe.`,
		Args: nArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 || batch > 10000 {
				return usageErr(cmd, "--batch %d: want 1 to 10000", batch)
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Hour) // many batches
			defer cancel()
			res, err := importDevices(ctx, c, args[0], keys, batch, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return emit(a.out, a.output, res)
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "return each device's key")
	cmd.Flags().IntVar(&batch, "batch", 10000, "devices per call (at most 10000)")
	return cmd
}

func importDevices(ctx context.Context, c *iot.Client, name string, keys bool, batchSize int, stdin io.Reader) (proto.Message, error) {
	batch := &batchSize
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var rows []importRow
	if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		rows, err = parseImportJSON(t)
	} else {
		rows, err = parseImportCSV(data)
	}
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("import: no devices in the input")
	}
	out := &corev1.ImportDevicesResponse{}
	for start := 0; start < len(rows); start += *batch {
		part := rows[start:min(start+*batch, len(rows))]
		req := &corev1.ImportDevicesRequest{ReturnKeys: keys, Devices: make([]*corev1.DeviceImport, len(part))}
		for i, row := range part {
			req.Devices[i] = row.dev
		}
		res, err := c.Core.ImportDevices(ctx, req)
		if err != nil {
			return nil, importError(err, part, start, out.Created)
		}
		out.Results = append(out.Results, res.Results...)
		out.Created += res.Created
	}
	return out, nil
}

var rowRef = regexp.MustCompile(`^devices\[(\d+)\]`)

// importError names the input line of the row the platform refused.
func importError(err error, part []importRow, start int, created int32) error {
	done := ""
	if start > 0 {
		done = fmt.Sprintf(" (the %d devices before this batch were imported, %d of them created; rerunning the import is safe)", start, created)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			v, derr := d.Value()
			br, ok := v.(*errdetails.BadRequest)
			if derr != nil || !ok || len(br.GetFieldViolations()) == 0 {
				continue
			}
			fv := br.GetFieldViolations()[0]
			if m := rowRef.FindStringSubmatch(fv.GetField()); m != nil {
				if i, _ := strconv.Atoi(m[1]); i < len(part) {
					field := strings.TrimPrefix(strings.TrimPrefix(fv.GetField(), m[0]), ".")
					return fmt.Errorf("%s: %s: %s; nothing of this batch was imported%s",
						part[i].where, field, fv.GetDescription(), done)
				}
			}
		}
	}
	return fmt.Errorf("%w%s", err, done)
}

func parseImportJSON(data []byte) ([]importRow, error) {
	if data[0] == '{' {
		var req corev1.ImportDevicesRequest
		if err := (protojson.UnmarshalOptions{}).Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("import JSON: %w", err)
		}
		rows := make([]importRow, len(req.Devices))
		for i, d := range req.Devices {
			rows[i] = importRow{dev: d, where: "device " + strconv.Itoa(i+1)}
		}
		return rows, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("import JSON: %w", err)
	}
	rows := make([]importRow, len(raw))
	for i, m := range raw {
		d := &corev1.DeviceImport{}
		if err := protojson.Unmarshal(m, d); err != nil {
			return nil, fmt.Errorf("import JSON device %d: %w", i+1, err)
		}
		rows[i] = importRow{dev: d, where: "device " + strconv.Itoa(i+1)}
	}
	return rows, nil
}

var csvTypes = map[string]corev1.ValueType{
	"double": corev1.ValueType_VALUE_TYPE_DOUBLE, "long": corev1.ValueType_VALUE_TYPE_LONG,
	"boolean": corev1.ValueType_VALUE_TYPE_BOOLEAN, "string": corev1.ValueType_VALUE_TYPE_STRING,
	"object": corev1.ValueType_VALUE_TYPE_OBJECT,
}

func parseImportCSV(data []byte) ([]importRow, error) {
	cr := csv.NewReader(bufio.NewReader(bytes.NewReader(data)))
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("import CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "external_id", "name", "description", "labels", "sensor", "type", "unit", "path":
			col[h] = i
		default:
			return nil, fmt.Errorf("import CSV: unknown column %q (want external_id, name, description, labels, sensor, type, unit, path)", head[i])
		}
	}
	if _, ok := col["name"]; !ok {
		return nil, errors.New("import CSV: the header has no name column")
	}
	var rows []importRow
	byExt := map[string]*corev1.DeviceImport{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("import CSV: %w", err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		ext := get("external_id")
		d := byExt[ext]
		if d == nil || ext == "" {
			d = &corev1.DeviceImport{ExternalId: ext, Name: get("name"), Description: get("description")}
			if l := get("labels"); l != "" {
				d.Labels = map[string]string{}
				for _, kv := range strings.Split(l, ";") {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return nil, fmt.Errorf("import CSV line %d: labels: want k=v;k2=v2, got %q", line, l)
					}
					d.Labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			rows = append(rows, importRow{dev: d, where: "line " + strconv.Itoa(line)})
			if ext != "" {
				byExt[ext] = d
			}
		}
		if name := get("sensor"); name != "" {
			typ, ok := csvTypes[strings.ToLower(get("type"))]
			if !ok {
				return nil, fmt.Errorf("import CSV line %d: type: want double, long, boolean, string or object, got %q", line, get("type"))
			}
			d.Sensors = append(d.Sensors, &corev1.SensorImport{Name: name, ValueType: typ, Unit: get("unit"), Path: get("path")})
		}
	}
}
