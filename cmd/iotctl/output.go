package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Output formats of -o.
const (
	formatJSON  = "json"
	formatTable = "table"
	formatCSV   = "csv"
)

func checkFormat(f string) error {
	switch f {
	case formatJSON, formatTable, formatCSV:
		return nil
	}
	return fmt.Errorf("output format %q: want json, table or csv", f)
}

// records is tabular output that is not an API message (profiles, the
// simulate summary): JSON prints the rows as objects (one object when single).
type records struct {
	cols   []string
	rows   []map[string]any
	single bool
}

var jsonOpts = protojson.MarshalOptions{Multiline: true, UseProtoNames: true}

// emit writes v (a proto.Message or records) in format f.
func emit(w io.Writer, f string, v any) error {
	var cols []string
	var rows []map[string]any
	switch x := v.(type) {
	case proto.Message:
		if f == formatJSON {
			b, err := jsonOpts.Marshal(x)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(w, string(b))
			return err
		}
		cols, rows = messageRows(x)
	case records:
		if f == formatJSON {
			var out any = x.rows
			if x.single && len(x.rows) == 1 {
				out = x.rows[0]
			}
			b, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(w, string(b))
			return err
		}
		cols, rows = x.cols, x.rows
	default:
		return fmt.Errorf("cannot print %T", v)
	}
	return writeRows(w, f, cols, rows, true)
}

// writeRows prints rows as an aligned table or CSV, with a header row when
// header is set.
func writeRows(w io.Writer, f string, cols []string, rows []map[string]any, header bool) error {
	cells := func(r map[string]any) []string {
		out := make([]string, len(cols))
		for i, c := range cols {
			out[i] = cell(r[c])
		}
		return out
	}
	if f == formatCSV {
		cw := csv.NewWriter(w)
		if header {
			if err := cw.Write(cols); err != nil {
				return err
			}
		}
		for _, r := range rows {
			if err := cw.Write(cells(r)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		up := make([]string, len(cols))
		for i, c := range cols {
			up[i] = strings.ToUpper(c)
		}
		fmt.Fprintln(tw, strings.Join(up, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(cells(r), "\t"))
	}
	return tw.Flush()
}

// cell renders one JSON value: strings and numbers as they are, anything
// else as compact JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool, json.Number:
		return fmt.Sprint(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var wellKnown = map[protoreflect.FullName]bool{
	"google.protobuf.Timestamp": true, "google.protobuf.Struct": true, "google.protobuf.Duration": true,
}

// messageRows turns an API answer into rows: the elements of its list field
// (ListDevices' result, ListReadings' readings), else the one message it
// wraps (CreateDevice's result), else the answer itself. Columns are the
// row message's fields in declaration order, a oneof as one column named
// after it (a reading's "value"), leaving out columns empty in every row.
func messageRows(m proto.Message) ([]string, []map[string]any) {
	r := m.ProtoReflect()
	var items []protoreflect.Message
	fields := r.Descriptor().Fields()
	for i := 0; i < fields.Len() && items == nil; i++ {
		fd := fields.Get(i)
		if fd.IsList() && fd.Message() != nil {
			l := r.Get(fd).List()
			items = make([]protoreflect.Message, l.Len())
			for j := range items {
				items[j] = l.Get(j).Message()
			}
		}
	}
	if items == nil {
		items = []protoreflect.Message{r}
		var only protoreflect.FieldDescriptor
		n := 0
		r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			only, n = fd, n+1
			return true
		})
		if n == 1 && !only.IsList() && !only.IsMap() && only.Message() != nil && !wellKnown[only.Message().FullName()] {
			items = []protoreflect.Message{r.Get(only).Message()}
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	desc := items[0].Descriptor()
	opts := protojson.MarshalOptions{UseProtoNames: true}
	rows := make([]map[string]any, len(items))
	used := map[string]bool{}
	for i, it := range items {
		b, _ := opts.Marshal(it.Interface())
		raw := map[string]any{}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		_ = dec.Decode(&raw)
		row := map[string]any{}
		for k, v := range raw {
			if fd := desc.Fields().ByName(protoreflect.Name(k)); fd != nil && fd.ContainingOneof() != nil && !fd.HasOptionalKeyword() {
				k = string(fd.ContainingOneof().Name())
			}
			row[k] = v
			used[k] = true
		}
		rows[i] = row
	}
	var cols []string
	seen := map[string]bool{}
	for i := 0; i < desc.Fields().Len(); i++ {
		fd := desc.Fields().Get(i)
		name := string(fd.Name())
		if o := fd.ContainingOneof(); o != nil && !fd.HasOptionalKeyword() {
			name = string(o.Name())
		}
		if used[name] && !seen[name] {
			cols = append(cols, name)
			seen[name] = true
		}
	}
	return cols, rows
}
