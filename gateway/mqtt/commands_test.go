package mqtt

import (
	"testing"

	"github.com/iotplatform/iotplatform/services/command"
)

func TestCommandACL_OnlyTheDevicesOwnCommandTopics(t *testing.T) {
	g := &Gateway{cmds: (*command.Service)(nil)}
	s := &session{device: 42, topic: "42"}
	for _, tc := range []struct {
		topic string
		write bool
		want  bool
	}{
		{"42/commands", false, true},
		{"42/commands/#", false, true},
		{"42/commands/+", false, true},
		{"43/commands/#", false, false},
		{"+/commands/#", false, false},
		{"#", false, false},
		{"42/#", false, false},
		{"42/commands/response", false, false},
		{"42/commands/7/response", true, true},
		{"42/commands/response", true, true},
		{"42/state/reported", true, true},
		{"43/commands/7/response", true, false},
		{"42/commands/x/response", true, false},
		{"42/commands/7", true, false},
		{"42/commands", true, false},
		{"43/state/reported", true, false},
	} {
		if got := g.commandACL(s, tc.topic, tc.write); got != tc.want {
			t.Errorf("commandACL(%q, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.want)
		}
	}
	if (&Gateway{}).commandACL(s, "42/commands", false) {
		t.Error("subscriptions allowed with commands disabled")
	}
}
