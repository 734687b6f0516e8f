package app

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/iotplatform/iotplatform"
)

// swaggerUI holds Swagger UI (from swagger-ui-dist, refreshed by
// scripts/swagger-ui.sh) and our index.html and init.js around it.
//
//go:embed swaggerui
var swaggerUI embed.FS

// docsCSP lets the Swagger UI page load only its own files and call only
// this server (Swagger UI sets inline styles and shows data: images).
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// mountDocs serves the OpenAPI 3.1 document at /openapi.json and Swagger UI
// for it at /docs/ on the API listener.
func (a *App) mountDocs() {
	a.api.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(iotplatform.OpenAPI)
	})
	sub, err := fs.Sub(swaggerUI, "swaggerui")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	files := http.StripPrefix("/docs/", http.FileServerFS(sub))
	a.api.Handle("GET /docs/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	a.api.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))
}
