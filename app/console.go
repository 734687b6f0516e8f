package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strings"

	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/web"
)

// ConsoleConfig configures the web console served by the API server.
type ConsoleConfig struct {
	// Enabled serves the console at / (and the original's /devices).
	Enabled bool
}

// RegisterFlags binds the console flags with IOT_* environment defaults.
func (c *ConsoleConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Bool(fs, &c.Enabled, "console", "IOT_CONSOLE", true, "serve the web console on the API server at / and /devices")
}

// Validate has nothing to refuse: the console has one on/off switch.
func (c *ConsoleConfig) Validate() error { return nil }

// consoleRoutes are the console's page paths (the first path segment);
// they all answer index.html and the single-page app routes in the browser.
// Any other path keeps its 404, so API, REST and tooling paths are unaffected.
var consoleRoutes = []string{"devices", "consumers", "charts", "deadletters", "users", "signin"}

// consoleCSP allows only the console's own bundle: no inline scripts or
// styles, API calls to this origin only, no framing.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// consoleFile is one built file, with its gzip encoding when that is smaller.
type consoleFile struct {
	body, gz    []byte
	contentType string
	cache       string
}

// consoleFiles are the console's files by path (index.html, assets/…).
type consoleFiles map[string]*consoleFile

// initConsole is the console module: it mounts the embedded console on the
// API mux (pages and assets; see consoleRoutes) and returns its files, nil
// when --console=false.
func (a *App) initConsole(context.Context) (consoleFiles, error) {
	if !a.cfg.Console.Enabled {
		return nil, nil
	}
	files, err := loadConsole(web.Dist(), a.consoleSettings())
	if err != nil {
		return nil, fmt.Errorf("web console: %w", err)
	}
	serve := func(name string) http.HandlerFunc {
		f := files[name]
		return func(w http.ResponseWriter, r *http.Request) { f.serve(w, r) }
	}
	index := serve("index.html")
	a.api.HandleFunc("GET /{$}", index)
	for _, p := range consoleRoutes {
		a.api.HandleFunc("GET /"+p, index)
		a.api.HandleFunc("GET /"+p+"/{rest...}", index)
	}
	a.api.HandleFunc("GET /favicon.svg", serve("favicon.svg"))
	a.api.HandleFunc("GET /assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := files["assets/"+r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		f.serve(w, r)
	})
	return files, nil
}

// consoleSettings are the device-facing ports the console's "connect this
// device" snippets use with the browser's host name.
func (a *App) consoleSettings() map[string]string {
	port := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return ""
		}
		return p
	}
	s := map[string]string{}
	for k, addr := range map[string]string{"http": a.cfg.Ingest.HTTP.Addr, "ws": a.cfg.Ingest.WS.Addr, "mqtt": a.cfg.Ingest.MQTT.Addr} {
		if p := port(addr); p != "" {
			s[k] = p
		}
	}
	return s
}

// loadConsole reads the built console into memory, puts settings into
// index.html and pre-compresses the text files.
func loadConsole(dist fs.FS, settings map[string]string) (consoleFiles, error) {
	files := consoleFiles{}
	err := fs.WalkDir(dist, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(dist, name)
		if err != nil {
			return err
		}
		f := &consoleFile{body: body, cache: "public, max-age=31536000, immutable"}
		switch path.Ext(name) {
		case ".html":
			f.contentType = "text/html; charset=utf-8"
			f.cache = "no-cache"
		case ".js":
			f.contentType = "text/javascript; charset=utf-8"
		case ".css":
			f.contentType = "text/css; charset=utf-8"
		case ".svg":
			f.contentType = "image/svg+xml"
			f.cache = "public, max-age=86400"
		default:
			f.contentType = "application/octet-stream"
		}
		if name == "index.html" {
			js, _ := json.Marshal(settings)
			f.body = bytes.Replace(body, []byte(`<meta name="iot-console" content="{}">`),
				[]byte(`<meta name="iot-console" content="`+html.EscapeString(string(js))+`">`), 1)
		}
		if strings.HasPrefix(f.contentType, "text/") || f.contentType == "image/svg+xml" {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(f.body)
			zw.Close()
			if b.Len() < len(f.body) {
				f.gz = b.Bytes()
			}
		}
		files[name] = f
		return nil
	})
	if err == nil && files["index.html"] == nil {
		err = fs.ErrNotExist
	}
	return files, err
}

func (f *consoleFile) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", f.cache)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(f.contentType, "text/html") {
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
	}
	h.Add("Vary", "Accept-Encoding")
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if strings.TrimSpace(strings.SplitN(part, ";", 2)[0]) == "gzip" {
			return true
		}
	}
	return false
}
