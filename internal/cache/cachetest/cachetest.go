// Package cachetest checks the staleness bound of refreshing caches in
// tests: a change made behind a cache's back must be seen within its TTL.
package cachetest

import (
	"testing"
	"time"
)

// SeenWithin polls seen until it reports true, failing t when that takes
// longer than the TTL bound (with a quarter of slack for the polling).
func SeenWithin(t testing.TB, ttl time.Duration, what string, seen func() bool) {
	t.Helper()
	changed := time.Now()
	for !seen() {
		if time.Since(changed) > ttl+ttl/4 {
			t.Fatalf("%s %v after the change (bound %v)", what, time.Since(changed), ttl)
		}
		time.Sleep(ttl / 40)
	}
}
