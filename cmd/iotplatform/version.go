package main

import (
	"runtime"
	"runtime/debug"
)

// buildVersion is the -ldflags version, or else "dev+<vcs revision>" (with
// "-dirty" for a modified tree) from the build info every `go build` inside
// a git checkout records; it ends with the Go version and the platform.
func buildVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += "+" + rev + dirty
		}
	}
	return v + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + cgoNote + ")"
}
