package query

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/store"
)

// SearchPath is the route of the consumer search proxy (the original
// platform's Elasticsearch auth proxy); SearchPrefix is the path prefix the
// API router must send to SearchHandler instead of the REST transcoder.
const (
	SearchPath   = "/api/consumers/consume/{sensor_id}/_search"
	SearchPrefix = "/api/consumers/consume/"
)

const maxSearchBody = 1 << 20

// SearchHandler serves POST (and GET) SearchPath: the OpenSearch query DSL
// body runs restricted to the sensor's readings. searcher is nil on stores
// without search, which then answer 501. The caller must already be
// authenticated by authn.Middleware.
func (s *Service) SearchHandler(searcher store.Searcher) http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("sensor_id"), 10, 64)
		if err != nil {
			apierror.Write(w, http.StatusBadRequest, "invalid_argument", "sensor_id must be an integer")
			return
		}
		sensor, err := s.authz.authorize(r.Context(), id, readData)
		if err != nil {
			apierror.WriteConnect(w, toConnect(r.Context(), s.log, err))
			return
		}
		if searcher == nil {
			apierror.Write(w, http.StatusNotImplemented, "unimplemented",
				"the search proxy needs the OpenSearch store (--store=opensearch); on the embedded store use GET /api/sensors/{sensor_id}/readings and /aggregate")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSearchBody))
		if err != nil {
			apierror.Write(w, http.StatusRequestEntityTooLarge, "invalid_argument", "search body larger than 1 MiB")
			return
		}
		raw, status, err := searcher.Search(r.Context(), store.SensorRef{DeviceID: sensor.DeviceID, SensorID: sensor.ID}, body)
		if errors.Is(err, store.ErrForbiddenQuery) {
			apierror.Write(w, http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "search proxy failed", "sensor_id", id, "err", err)
			apierror.Write(w, http.StatusBadGateway, "unavailable", "the search backend could not answer")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(raw)
	}
	mux.HandleFunc("POST "+SearchPath, h)
	mux.HandleFunc("GET "+SearchPath, h)
	return mux
}
