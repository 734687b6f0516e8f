package app

import (
	"context"
	"fmt"
)

// moduleName names one module of a process. The role modules carry their
// role's name.
type moduleName string

// The modules. docs/ARCHITECTURE.md draws them with their dependencies.
const (
	modLimits    moduleName = "limits"    // connection budget, body guards, stream caps (limits.go)
	modRegistry  moduleName = "registry"  // metadata registry: SQLite or PostgreSQL (registry.go)
	modAuth      moduleName = "auth"      // signing keys and THE token verifier (auth.go)
	modTLS       moduleName = "tls"       // listener certificates and device CAs (tls.go)
	modAPI       moduleName = "api"       // Connect options and the REST transcoder (api.go)
	modStore     moduleName = "store"     // time-series store: embedded or OpenSearch (store.go)
	modBus       moduleName = "bus"       // write-ahead log, direct hand-off or Kafka (bus.go)
	modServer    moduleName = "server"    // the API listener, after every role registered (api.go)
	modConsole   moduleName = "console"   // the web console at / and /devices (console.go)
	modFunction  moduleName = "function"  // `iotplatform function`: filtered Core (function.go)
	modRules     moduleName = "rules"     // RulesService: rules, alerts, retention settings (rules.go)
	modAlerting  moduleName = "alerting"  // rule evaluation in the pipeline, webhooks (rules.go)
	modRetention moduleName = "retention" // deletes expired readings, keeps their aggregates (rules.go)

	modCore     = moduleName(RoleCore)     // CoreService (core.go)
	modPipeline = moduleName(RolePipeline) // bus → store (pipeline.go)
	modIngest   = moduleName(RoleIngest)   // device edges + IngestService (ingest.go)
	modQuery    = moduleName(RoleQuery)    // QueryService + search proxy (query.go)

	modCommands moduleName = "commands" // command queue, device sessions and state, CommandService (commands.go)
)

// module is one entry of the module map: the modules it needs, and its
// init, which calls the module's init function and keeps what that
// function returns in the one App field the module provides.
type module struct {
	deps []moduleName
	init func(ctx context.Context) error
}

// modules is the module map of `iotplatform serve`. A module's init runs
// after the inits of its deps, once, and only when a role of the process
// needs it (directly or through another module).
func (a *App) modules() map[moduleName]module {
	return map[moduleName]module{
		modLimits: {init: func(context.Context) error { a.guards = a.initLimits(); return nil }},
		modTelemetry: {init: func(ctx context.Context) (err error) {
			a.tracing, err = a.initTelemetry(ctx)
			return err
		}},
		modRegistry: {init: func(ctx context.Context) (err error) {
			a.reg, err = a.initRegistry(ctx)
			return err
		}},
		modAuth: {deps: []moduleName{modRegistry}, init: func(ctx context.Context) (err error) {
			a.authParts, err = a.initAuth(ctx)
			return err
		}},
		modTLS: {deps: []moduleName{modRegistry, modAuth}, init: func(context.Context) (err error) {
			a.tlsParts, err = a.initTLS()
			return err
		}},
		modAPI: {deps: []moduleName{modTelemetry, modLimits, modAuth, modTLS}, init: func(context.Context) error {
			a.apiParts = a.initAPI()
			return nil
		}},
		modStore: {init: func(ctx context.Context) (err error) {
			a.store, err = a.initStore(ctx)
			return err
		}},
		modBus: {init: func(ctx context.Context) (err error) {
			a.bus, err = a.initBus(ctx)
			return err
		}},
		// Core after store and bus: they provide the provisioners Core calls
		// when a sensor is created or deleted (per-sensor topics, indices).
		modCore: {deps: []moduleName{modRegistry, modAuth, modAPI, modStore, modBus, modCommands}, init: func(ctx context.Context) (err error) {
			a.core, err = a.initCore(ctx)
			return err
		}},
		modPipeline: {deps: []moduleName{modTelemetry, modRegistry, modStore, modBus}, init: func(ctx context.Context) (err error) {
			a.pipeline, err = a.initPipeline(ctx)
			return err
		}},
		modIngest: {deps: []moduleName{modTelemetry, modRegistry, modAuth, modTLS, modAPI, modStore, modBus, modCommands}, init: func(ctx context.Context) (err error) {
			a.ingest, err = a.initIngest(ctx)
			return err
		}},
		modQuery: {deps: []moduleName{modRegistry, modAuth, modAPI, modStore, modBus}, init: func(ctx context.Context) (err error) {
			a.query, err = a.initQuery(ctx)
			return err
		}},
		modRules: {deps: []moduleName{modRegistry, modAuth, modAPI}, init: func(ctx context.Context) (err error) {
			a.rules, err = a.initRules(ctx)
			return err
		}},
		modAlerting: {deps: []moduleName{modRegistry, modStore, modPipeline}, init: func(ctx context.Context) (err error) {
			a.alerting, err = a.initAlerting(ctx)
			return err
		}},
		modRetention: {deps: []moduleName{modRegistry, modStore, modPipeline}, init: func(ctx context.Context) (err error) {
			a.retention, err = a.initRetention(ctx)
			return err
		}},
		modCommands: {deps: []moduleName{modRegistry, modAuth, modAPI}, init: func(ctx context.Context) (err error) {
			a.commands, err = a.initCommands(ctx)
			return err
		}},
		modConsole: {deps: []moduleName{modAPI}, init: func(ctx context.Context) (err error) {
			a.console, err = a.initConsole(ctx)
			return err
		}},
		modServer: {deps: []moduleName{modAPI, modTLS, modConsole}, init: func(context.Context) error {
			a.initServer()
			return nil
		}},
	}
}

// targets are the modules the process runs for its roles, in role order,
// then the API server.
func (a *App) targets() []moduleName {
	var out []moduleName
	for _, r := range AllRoles {
		if a.roles.Has(r) {
			out = append(out, moduleName(r))
		}
	}
	// Rules are served with Core and evaluated by the pipeline.
	if a.roles.Has(RoleCore) {
		out = append(out, modRules)
	}
	if a.roles.Has(RolePipeline) {
		out = append(out, modAlerting, modRetention)
	}
	return append(out, modServer)
}

// moduleOrder returns targets and everything they depend on, each once,
// every module after its dependencies; it refuses unknown modules and
// cycles.
func moduleOrder(mods map[moduleName]module, targets []moduleName) ([]moduleName, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[moduleName]int{}
	var order []moduleName
	var visit func(m moduleName, path []moduleName) error
	visit = func(m moduleName, path []moduleName) error {
		switch state[m] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("module dependency cycle: %v", append(path, m))
		}
		mod, ok := mods[m]
		if !ok {
			return fmt.Errorf("module %q is not in the module map (needed by %v)", m, path)
		}
		state[m] = visiting
		for _, d := range mod.deps {
			if err := visit(d, append(path, m)); err != nil {
				return err
			}
		}
		state[m] = done
		order = append(order, m)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// initModules runs the inits of targets and their dependencies in
// dependency order.
func initModules(ctx context.Context, mods map[moduleName]module, targets []moduleName) error {
	order, err := moduleOrder(mods, targets)
	if err != nil {
		return err
	}
	for _, m := range order {
		if err := mods[m].init(ctx); err != nil {
			return err
		}
	}
	return nil
}
