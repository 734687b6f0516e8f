// Package limits holds the platform's defences against hostile traffic that
// every listener shares: connection caps with a process-wide file-descriptor
// budget, the HTTP request guard (body size limit and minimum body rate),
// per-caller stream caps, exponential backoff for repeated failures, and the
// client address (with opt-in X-Forwarded-For trust) that per-address
// throttling keys on. docs/SECURITY.md lists every limit and its flag.
package limits
