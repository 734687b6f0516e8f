package app

import (
	"errors"
	"fmt"
	"strings"
)

// Role is a part of the platform a process runs (--roles). Each role is
// served by the module of the same name (modules.go).
type Role string

// The roles, in the order their modules start.
const (
	RoleCore     Role = "core"
	RolePipeline Role = "pipeline"
	RoleIngest   Role = "ingest"
	RoleQuery    Role = "query"
)

// AllRoles lists every role in start order.
var AllRoles = []Role{RoleCore, RolePipeline, RoleIngest, RoleQuery}

// Roles is the set of roles one process runs.
type Roles map[Role]bool

// Has reports whether the process runs role r.
func (s Roles) Has(r Role) bool { return s[r] }

// String lists the roles in start order, comma-separated.
func (s Roles) String() string {
	var out []string
	for _, r := range AllRoles {
		if s[r] {
			out = append(out, string(r))
		}
	}
	return strings.Join(out, ",")
}

// ParseRoles reads --roles: "all" or a comma-separated list of roles.
func ParseRoles(list string) (Roles, error) {
	set := Roles{}
	for _, r := range strings.Split(list, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "all":
			for _, k := range AllRoles {
				set[k] = true
			}
		case r == "":
		default:
			known := false
			for _, k := range AllRoles {
				known = known || string(k) == r
			}
			if !known {
				return nil, fmt.Errorf("--roles (IOT_ROLES): unknown role %q (want all or %s)", r, Roles{RoleCore: true, RoleIngest: true, RolePipeline: true, RoleQuery: true})
			}
			set[Role(r)] = true
		}
	}
	if len(set) == 0 {
		return nil, errors.New("--roles (IOT_ROLES): no roles selected")
	}
	return set, nil
}
