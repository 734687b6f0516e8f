package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	"github.com/iotplatform/iotplatform/internal/gengrpc/corev1grpc"
	"github.com/iotplatform/iotplatform/services/core"
)

// CoreConfig configures the core role: its flags are
// declared in services/core (Flags).
type CoreConfig = core.Flags

// initCore serves CoreService and makes sure an admin exists.
func (a *App) initCore(ctx context.Context) (*core.Service, error) {
	var provisioners []core.Provisioner
	if a.store != nil {
		provisioners = append(provisioners, a.store.provisioners...)
	}
	if a.bus != nil {
		provisioners = append(provisioners, a.bus.provisioners...)
	}
	svc := core.New(a.log, a.reg, a.signer, a.coreConfig(), provisioners...)
	generated, err := svc.EnsureAdmin(ctx, a.cfg.Core.AdminPassword)
	if err != nil {
		return nil, fmt.Errorf("create admin: %w", err)
	}
	if generated != "" {
		file := filepath.Join(a.cfg.DataDir, "admin-password")
		if err := os.WriteFile(file, []byte(generated+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write admin password: %w", err)
		}
		// Printed once, on the console only (not in structured logs).
		fmt.Fprintf(os.Stderr, "\n  Admin user: root\n  Password:   %s\n  (also saved to %s, mode 0600)\n\n", generated, file)
	}
	return svc, a.mountCore(ctx, svc)
}

// mountCore serves svc over Connect/gRPC and REST (serve and function mode).
func (a *App) mountCore(ctx context.Context, svc *core.Service) error {
	a.api.Handle(corev1connect.NewCoreServiceHandler(svc, a.connectOpts...))
	a.grpcServices = append(a.grpcServices, corev1connect.CoreServiceName)
	if err := corev1grpc.RegisterCoreServiceHandlerServer(ctx, a.rest, svc); err != nil {
		return fmt.Errorf("register core REST: %w", err)
	}
	return nil
}

// coreConfig is the Core service configuration (serve and function mode).
func (a *App) coreConfig() core.Config {
	return core.Config{UserTokenTTL: a.cfg.Core.UserTokenTTL, RefreshTokenTTL: a.cfg.Core.RefreshTokenTTL, SignIn: a.cfg.Limits.SignIn, Metrics: a.metrics}
}
