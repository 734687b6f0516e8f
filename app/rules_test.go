package app

import (
	"slices"
	"testing"
)

// TestFunctionGroups_RulesProceduresHaveGroups: RulesService is servable in
// function mode, its REST paths routed to its procedures.
func TestFunctionGroups_RulesProceduresHaveGroups(t *testing.T) {
	g := procedureGroups()
	if !slices.Contains(g["rules"], "CreateRule") || !slices.Contains(g["rules"], "SetSensorRetention") ||
		!slices.Contains(g["alerts"], "WatchAlerts") || !slices.Contains(g["alerts"], "AcknowledgeAlert") {
		t.Fatalf("rules %v, alerts %v", g["rules"], g["alerts"])
	}
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/api/rules", "CreateRule"},
		{"DELETE", "/api/rules/4", "DeleteRule"},
		{"POST", "/api/alerts/ab12/ack", "AcknowledgeAlert"},
		{"PUT", "/api/sensors/3/retention", "SetSensorRetention"},
	} {
		if r, ok := matchREST(coreRoutes(), tc.method, tc.path); !ok || r.procedure != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, r.procedure, tc.want)
		}
	}
}
