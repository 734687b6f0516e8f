package query

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// ExportPrefix is the path prefix of the export downloads, served by
// ExportHandler instead of the REST transcoder:
//
//	GET /api/export/sensors/{sensor_id}?from=&to=&format=csv|ndjson
//	GET /api/export/devices/{device_id}?from=&to=&format=csv|ndjson
const ExportPrefix = "/api/export/"

// SensorLister lists a device's sensors (device exports).
type SensorLister interface {
	ListSensors(ctx context.Context, deviceID int64) ([]registry.Sensor, error)
}

// ExportHandler streams readings as CSV (header sensor_id,timestamp,value;
// the value is a JSON literal) or NDJSON (one ingest reading per line), in
// timestamp order, page by page from the store: memory stays flat however
// long the range. Both formats are what `iotctl backfill` imports. The
// caller must already be authenticated by authn.Middleware and may read the
// sensors (owner, admin, or a consumer granted them).
func (s *Service) ExportHandler(sensors SensorLister) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ExportPrefix+"sensors/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			apierror.Write(w, http.StatusBadRequest, "invalid_argument", "sensor_id must be a positive integer")
			return
		}
		sn, err := s.authz.authorize(r.Context(), id, readData)
		if err != nil {
			apierror.WriteConnect(w, toConnect(r.Context(), s.log, err))
			return
		}
		s.export(w, r, fmt.Sprintf("sensor-%d", id), []int64{sn.ID})
	})
	mux.HandleFunc("GET "+ExportPrefix+"devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			apierror.Write(w, http.StatusBadRequest, "invalid_argument", "device_id must be a positive integer")
			return
		}
		ss, err := sensors.ListSensors(r.Context(), id)
		if err != nil || len(ss) == 0 {
			apierror.Write(w, http.StatusNotFound, "not_found", "device not found or without sensors")
			return
		}
		var ids []int64
		for _, sn := range ss {
			if _, err := s.authz.authorize(r.Context(), sn.ID, readData); err != nil {
				apierror.WriteConnect(w, toConnect(r.Context(), s.log, err))
				return
			}
			ids = append(ids, sn.ID)
		}
		s.export(w, r, fmt.Sprintf("device-%d", id), ids)
	})
	return mux
}

func (s *Service) export(w http.ResponseWriter, r *http.Request, name string, sensors []int64) {
	q := r.URL.Query()
	from, _, err := parseTime("from", q.Get("from"))
	if err == nil {
		var to int64
		if to, _, err = parseTime("to", q.Get("to")); err == nil && to != 0 && to <= from {
			err = invalid("to must be after from")
		}
	}
	if err != nil {
		apierror.WriteConnect(w, toConnect(r.Context(), s.log, err))
		return
	}
	to, _, _ := parseTime("to", q.Get("to"))
	format := q.Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "ndjson" {
		apierror.Write(w, http.StatusBadRequest, "invalid_argument", "format: want csv or ndjson")
		return
	}
	ctype := map[string]string{"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}[format]
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, name, format))
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if format == "csv" {
		_ = cw.Write([]string{"sensor_id", "timestamp", "value"})
	}
	rc := http.NewResponseController(w)
	for _, sensor := range sensors {
		lq := store.ListQuery{SensorID: sensor, FromNS: from, ToNS: to, Limit: store.MaxLimit}
		for {
			_ = rc.SetWriteDeadline(time.Now().Add(time.Minute)) // a slow reader may take its time, page by page
			page, more, err := s.st.List(r.Context(), lq)
			if err != nil {
				// Headers are out: the truncated body ends without the
				// final newline of a complete export.
				s.log.WarnContext(r.Context(), "export failed", "sensor_id", sensor, "err", err)
				return
			}
			for _, rd := range page {
				ts := time.Unix(0, rd.TimeNS).UTC().Format(time.RFC3339Nano)
				v := jsonValue(rd.Value)
				if format == "csv" {
					_ = cw.Write([]string{strconv.FormatInt(sensor, 10), ts, string(v)})
					continue
				}
				fmt.Fprintf(bw, `{"sensor_id":"%d","timestamp":"%s","value":%s}`+"\n", sensor, ts, v)
			}
			cw.Flush()
			if err := bw.Flush(); err != nil {
				return // the client went away
			}
			_ = rc.Flush()
			if !more || len(page) == 0 {
				break
			}
			last := page[len(page)-1]
			lq.AfterNS, lq.AfterSeq, lq.HasAfter = last.TimeNS, last.Seq, true
		}
	}
}

// jsonValue is a reading value as a JSON literal.
func jsonValue(v store.Value) []byte {
	switch v.Kind {
	case store.KindDouble:
		return strconv.AppendFloat(nil, v.Double, 'g', -1, 64)
	case store.KindLong:
		return strconv.AppendInt(nil, v.Long, 10)
	case store.KindBool:
		return strconv.AppendBool(nil, v.Bool)
	case store.KindString:
		b, _ := json.Marshal(v.Str)
		return b
	case store.KindObject:
		return v.Object
	}
	return []byte("null")
}
