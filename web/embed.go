// Package web holds the built web console (dist/, built from src/ by
// build.mjs and committed, like gen/) for the API server to serve.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist returns the built console: index.html, favicon.svg and assets/
// (content-hashed bundle files).
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time; Sub cannot fail on it
	}
	return sub
}
