package registrysql

import (
	"slices"
	"testing"
)

// TestNotifiedIDs: a change notification carries one device id (every
// write) or TouchDevices' comma-separated ids; anything else is skipped.
func TestNotifiedIDs(t *testing.T) {
	for payload, want := range map[string][]int64{
		"42":       {42},
		"1,2,3":    {1, 2, 3},
		"7,,x,8":   {7, 8},
		"":         nil,
		"notanint": nil,
	} {
		if got := notifiedIDs(payload); !slices.Equal(got, want) {
			t.Errorf("notifiedIDs(%q) = %v, want %v", payload, got, want)
		}
	}
}
