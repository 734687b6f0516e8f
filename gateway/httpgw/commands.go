package httpgw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
)

// Commands is what the gateway needs of the command service
// (command.Service) for devices that cannot hold a connection:
//
//	GET  /commands?wait=30            long-poll: 200 with one command
//	                                  (command.Message), 204 when none came
//	POST /commands/{id}/response      the answer: {"status": "succeeded"|"failed",
//	                                  "result": ..., "message": ...}
//	PUT  /state/reported              reported attributes (a JSON object)
//
// A command answered by a long-poll is delivered once the answer is written.
type Commands = command.Edge

// PollConfig bounds the long-polls.
type PollConfig struct {
	// MaxWait is the longest wait a poll may ask for (default 60 s);
	// DefaultWait applies when it asks none (default 30 s).
	MaxWait, DefaultWait time.Duration
	// MaxPerDevice and MaxTotal cap the polls open at once (defaults 2
	// and 1000); more are refused with 429.
	MaxPerDevice, MaxTotal int
	// MaxBody bounds answers and reported attributes (default 64 KiB).
	MaxBody int64
}

type polls struct {
	cfg       PollConfig
	mu        sync.Mutex
	total     int
	perDevice map[int64]int
}

func (p *polls) acquire(device int64) (release func(), msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total >= p.cfg.MaxTotal {
		return nil, "too many long-polls open on this gateway; retry later"
	}
	if p.perDevice[device] >= p.cfg.MaxPerDevice {
		return nil, "too many long-polls open for this device (at most " + strconv.Itoa(p.cfg.MaxPerDevice) + ")"
	}
	p.total++
	p.perDevice[device]++
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.total--
		if p.perDevice[device]--; p.perDevice[device] <= 0 {
			delete(p.perDevice, device)
		}
	}, ""
}

// EnableCommands serves the command endpoints.
func (g *Gateway) EnableCommands(c Commands, cfg PollConfig) {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Minute
	}
	if cfg.DefaultWait <= 0 || cfg.DefaultWait > cfg.MaxWait {
		cfg.DefaultWait = min(30*time.Second, cfg.MaxWait)
	}
	if cfg.MaxPerDevice <= 0 {
		cfg.MaxPerDevice = 2
	}
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = 1000
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	g.cmds, g.polls = c, &polls{cfg: cfg, perDevice: map[int64]int{}}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Response{Code: code, Message: msg})
}

// serveCommands serves the command endpoints; false when path is none.
func (g *Gateway) serveCommands(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	var method string
	var id int64
	switch {
	case path == "/commands":
		method = http.MethodGet
	case path == "/state/reported":
		method = http.MethodPut
	case strings.HasPrefix(path, "/commands/") && strings.HasSuffix(path, "/response"):
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "/commands/"), "/response"), 10, 64)
		if err != nil {
			return false
		}
		method, id = http.MethodPost, n
	default:
		return false
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+method)
		return true
	}
	p, err := authn.DeviceFromRequest(r, g.auth)
	if err != nil {
		status := authn.DeviceStatus(err)
		writeError(w, status, apierror.CodeOfStatus(status), err.Error())
		return true
	}
	g.cmds.Seen(p.ID)
	if method == http.MethodGet {
		g.poll(w, r, p.ID)
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.polls.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "body exceeds "+strconv.FormatInt(g.polls.cfg.MaxBody, 10)+" bytes")
			return true
		}
		writeError(w, http.StatusBadRequest, "malformed", "read body: "+err.Error())
		return true
	}
	if method == http.MethodPut {
		err = g.cmds.Report(r.Context(), p.ID, body)
	} else {
		a := command.ParseAnswer(body)
		err = g.cmds.Respond(r.Context(), p.ID, id, a.Success, a.Result, a.Message)
	}
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, command.ErrUnknownCommand):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, registry.ErrFailedPrecondition):
		writeError(w, http.StatusConflict, "failed_precondition", err.Error())
	case command.IsDeviceError(err):
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	default:
		g.log.Warn("command call failed", "device_id", p.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the platform cannot record this right now; send it again later")
	}
	return true
}

// poll waits for one command for the device.
func (g *Gateway) poll(w http.ResponseWriter, r *http.Request, device int64) {
	wait := g.polls.cfg.DefaultWait
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 || time.Duration(n*float64(time.Second)) > g.polls.cfg.MaxWait {
			writeError(w, http.StatusBadRequest, "invalid_argument", "wait: seconds from 0 to "+strconv.Itoa(int(g.polls.cfg.MaxWait/time.Second)))
			return
		}
		wait = time.Duration(n * float64(time.Second))
	}
	release, msg := g.polls.acquire(device)
	if release == nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "resource_exhausted", msg)
		return
	}
	defer release()
	sess := g.cmds.Attach(device, command.EdgeHTTP, true)
	defer sess.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-timer.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case c := <-sess.Commands():
			if !g.cmds.Sent(r.Context(), sess, c) {
				continue
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(command.Encode(c))
			if err == nil {
				err = http.NewResponseController(w).Flush()
			}
			if err != nil {
				return // stays sent: delivered again on the next poll
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
			defer cancel()
			if err := g.cmds.Ack(ctx, device, c.ID, "long-poll answer written on http"); err != nil {
				g.log.Warn("command delivery not recorded", "device_id", device, "command_id", c.ID, "err", err)
			}
			return
		}
	}
}
