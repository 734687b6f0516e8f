package e2e

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	"github.com/iotplatform/iotplatform/internal/gengrpc/corev1grpc"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// protocols are the three wire protocols of the Go SDK.
var protocols = []struct {
	name string
	opts []iot.Option
}{
	{"connect", nil},
	{"grpc", []iot.Option{iot.WithGRPC()}},
	{"grpcweb", []iot.Option{iot.WithGRPCWeb()}},
}

func coreClient(p *Platform, token string, opts []iot.Option) corev1connect.CoreServiceClient {
	return iot.New(p.URL(), append(slices.Clone(opts), iot.WithToken(token))...).Core
}

func code(err error) connect.Code { return connect.CodeOf(err) }

// TestRPC_EveryMethodOverConnectGRPCAndGRPCWeb exercises every CoreService
// RPC through a connect-go client in each protocol.
func TestRPC_EveryMethodOverConnectGRPCAndGRPCWeb(t *testing.T) {
	p := Start(t, Options{})
	ctx := context.Background()
	for i, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			anon := coreClient(p, "", proto.opts)
			in, err := anon.SignIn(ctx, &corev1.SignInRequest{Username: "root", Password: p.AdminPassword})
			if err != nil || in.GetUser().GetRole() != corev1.Role_ROLE_ADMIN {
				t.Fatalf("SignIn: %v %v", in, err)
			}
			admin := coreClient(p, in.GetToken(), proto.opts)
			me, err := admin.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
			if err != nil || me.GetResult().GetUsername() != "root" {
				t.Fatalf("GetCurrentUser: %v %v", me, err)
			}
			name := []string{"carol", "dave", "erin"}[i]
			u, err := admin.CreateUser(ctx, &corev1.CreateUserRequest{Username: name, Password: "password-" + name, DisplayName: "C"})
			if err != nil || u.GetResult().GetRole() != corev1.Role_ROLE_USER {
				t.Fatalf("CreateUser: %v %v", u, err)
			}
			uid := u.GetResult().GetId()
			if l, err := admin.ListUsers(ctx, &corev1.ListUsersRequest{}); err != nil || len(l.GetResult()) < 2 {
				t.Fatalf("ListUsers: %v %v", l, err)
			}
			dn := "Carol C"
			if r, err := admin.UpdateUser(ctx, &corev1.UpdateUserRequest{Id: uid, DisplayName: &dn}); err != nil || r.GetResult().GetDisplayName() != dn {
				t.Fatalf("UpdateUser: %v %v", r, err)
			}
			userIn, err := anon.SignIn(ctx, &corev1.SignInRequest{Username: name, Password: "password-" + name})
			if err != nil {
				t.Fatal(err)
			}
			user := coreClient(p, userIn.GetToken(), proto.opts)
			if g, err := user.GetUser(ctx, &corev1.GetUserRequest{Id: uid}); err != nil || g.GetResult().GetUsername() != name {
				t.Fatalf("GetUser self: %v %v", g, err)
			}
			if _, err := user.ChangePassword(ctx, &corev1.ChangePasswordRequest{Id: uid, CurrentPassword: "password-" + name, NewPassword: "new-password-" + name}); err != nil {
				t.Fatalf("ChangePassword: %v", err)
			}
			userIn, err = anon.SignIn(ctx, &corev1.SignInRequest{Username: name, Password: "new-password-" + name})
			if err != nil {
				t.Fatalf("sign in with the new password: %v", err)
			}
			user = coreClient(p, userIn.GetToken(), proto.opts)

			d, err := user.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: "car", Labels: map[string]string{"k": "v"}})
			if err != nil || d.GetResult().GetOwnerId() != uid {
				t.Fatalf("CreateDevice: %v %v", d, err)
			}
			did := d.GetResult().GetId()
			if l, err := user.ListDevices(ctx, &corev1.ListDevicesRequest{}); err != nil || len(l.GetResult()) != 1 {
				t.Fatalf("ListDevices: %v %v", l, err)
			}
			if g, err := user.GetDevice(ctx, &corev1.GetDeviceRequest{Id: did}); err != nil || g.GetResult().GetLabels()["k"] != "v" {
				t.Fatalf("GetDevice: %v %v", g, err)
			}
			newName := "car2"
			if r, err := user.UpdateDevice(ctx, &corev1.UpdateDeviceRequest{Id: did, Name: &newName, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}}); err != nil || r.GetResult().GetName() != "car2" || r.GetResult().GetLabels()["k"] != "v" {
				t.Fatalf("UpdateDevice: %v %v", r, err)
			}
			s, err := user.CreateSensor(ctx, &corev1.CreateSensorRequest{DeviceId: did, Name: "temp", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE, Path: "engine", Unit: "C"})
			if err != nil || s.GetSensor().GetMapping() != `{"type":"double"}` {
				t.Fatalf("CreateSensor: %v %v", s, err)
			}
			sid := s.GetSensor().GetId()
			if l, err := user.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: did}); err != nil || len(l.GetResult()) != 1 {
				t.Fatalf("ListSensors: %v %v", l, err)
			}
			if g, err := user.GetSensor(ctx, &corev1.GetSensorRequest{DeviceId: did, Id: sid}); err != nil || g.GetSensor().GetUnit() != "C" {
				t.Fatalf("GetSensor: %v %v", g, err)
			}
			unit := "K"
			if r, err := user.UpdateSensor(ctx, &corev1.UpdateSensorRequest{DeviceId: did, Id: sid, Unit: &unit}); err != nil || r.GetSensor().GetUnit() != "K" {
				t.Fatalf("UpdateSensor: %v %v", r, err)
			}
			if tr, err := user.GetDeviceTree(ctx, &corev1.GetDeviceTreeRequest{Id: did}); err != nil || tr.GetRoot().GetChildren()[0].GetName() != "engine" {
				t.Fatalf("GetDeviceTree: %v %v", tr, err)
			}
			if k, err := user.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: did}); err != nil || k.GetToken() == "" {
				t.Fatalf("GetDeviceKey: %v %v", k, err)
			}
			if k, err := user.RotateDeviceKey(ctx, &corev1.RotateDeviceKeyRequest{Id: did}); err != nil || k.GetToken() == "" {
				t.Fatalf("RotateDeviceKey: %v %v", k, err)
			}
			c, err := user.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: "job"})
			if err != nil {
				t.Fatal(err)
			}
			cid := c.GetResult().GetId()
			if g, err := user.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: cid, SensorId: sid}); err != nil || !slices.Equal(g.GetResult().GetSensorIds(), []int64{sid}) {
				t.Fatalf("GrantSensor: %v %v", g, err)
			}
			if l, err := user.ListConsumers(ctx, &corev1.ListConsumersRequest{}); err != nil || len(l.GetResult()) != 1 {
				t.Fatalf("ListConsumers: %v %v", l, err)
			}
			if g, err := user.GetConsumer(ctx, &corev1.GetConsumerRequest{Id: cid}); err != nil || len(g.GetResult().GetSensorIds()) != 1 {
				t.Fatalf("GetConsumer: %v %v", g, err)
			}
			desc := "d"
			if r, err := user.UpdateConsumer(ctx, &corev1.UpdateConsumerRequest{Id: cid, Description: &desc}); err != nil || r.GetResult().GetDescription() != "d" {
				t.Fatalf("UpdateConsumer: %v %v", r, err)
			}
			if k, err := user.GetConsumerKey(ctx, &corev1.GetConsumerKeyRequest{Id: cid}); err != nil || k.GetToken() == "" {
				t.Fatalf("GetConsumerKey: %v %v", k, err)
			}
			if k, err := user.RotateConsumerKey(ctx, &corev1.RotateConsumerKeyRequest{Id: cid}); err != nil || k.GetToken() == "" {
				t.Fatalf("RotateConsumerKey: %v %v", k, err)
			}
			if r, err := user.RevokeSensor(ctx, &corev1.RevokeSensorRequest{ConsumerId: cid, SensorId: sid}); err != nil || len(r.GetResult().GetSensorIds()) != 0 {
				t.Fatalf("RevokeSensor: %v %v", r, err)
			}
			if _, err := user.DeleteConsumer(ctx, &corev1.DeleteConsumerRequest{Id: cid}); err != nil {
				t.Fatal(err)
			}
			if _, err := user.DeleteSensor(ctx, &corev1.DeleteSensorRequest{DeviceId: did, Id: sid}); err != nil {
				t.Fatal(err)
			}
			if _, err := user.DeleteDevice(ctx, &corev1.DeleteDeviceRequest{Id: did}); err != nil {
				t.Fatal(err)
			}
			if _, err := user.GetDevice(ctx, &corev1.GetDeviceRequest{Id: did}); code(err) != connect.CodeNotFound {
				t.Fatalf("GetDevice after delete: %v", err)
			}
			if _, err := admin.DeleteUser(ctx, &corev1.DeleteUserRequest{Id: uid}); err != nil {
				t.Fatal(err)
			}
			// The deleted user's token stops working (within the staleness bound).
			eventually(t, func() bool {
				_, err := user.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
				return code(err) == connect.CodeUnauthenticated
			})
		})
	}
}

// TestRPC_GRPCGoClientAndReflection uses grpc-go, as grpcurl does.
func TestRPC_GRPCGoClientAndReflection(t *testing.T) {
	p := Start(t, Options{})
	conn, err := grpc.NewClient(p.API, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	refl, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refl.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}})
	rr, err := refl.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, "iot.core.v1.CoreService") {
		t.Fatalf("reflection lists %v", names)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "iot.core.v1.CoreService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}

	cl := corev1grpc.NewCoreServiceClient(conn)
	in, err := cl.SignIn(ctx, &corev1.SignInRequest{Username: "root", Password: p.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	auth := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+in.GetToken())
	d, err := cl.CreateDevice(auth, &corev1.CreateDeviceRequest{Name: "grpc-device"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateDevice(auth, &corev1.CreateDeviceRequest{Name: "grpc-device"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := cl.CreateDevice(auth, &corev1.CreateDeviceRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty name: %v", err)
	}
	if g, err := cl.GetDevice(auth, &corev1.GetDeviceRequest{Id: d.GetResult().GetId()}); err != nil || g.GetResult().GetName() != "grpc-device" {
		t.Fatalf("GetDevice: %v %v", g, err)
	}
	if _, err := cl.ListDevices(ctx, &corev1.ListDevicesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if _, err := cl.GetDevice(auth, &corev1.GetDeviceRequest{Id: 999}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestPermissions checks who may call what: users only their own things,
// device and consumer tokens no administration, no token nothing.
func TestPermissions(t *testing.T) {
	p := Start(t, Options{})
	ctx := context.Background()
	adminTok := p.AdminToken()
	admin := coreClient(p, adminTok, nil)
	for _, n := range []string{"alice", "bob"} {
		if _, err := admin.CreateUser(ctx, &corev1.CreateUserRequest{Username: n, Password: "password-" + n}); err != nil {
			t.Fatal(err)
		}
	}
	aliceTok, bobTok := p.SignIn("alice", "password-alice"), p.SignIn("bob", "password-bob")
	alice, bob := coreClient(p, aliceTok, nil), coreClient(p, bobTok, nil)
	dev := p.NewDevice(aliceTok, "alice-car", "double")
	did := mustID(t, dev.ID)
	sid := mustID(t, dev.SensorID)
	c, err := alice.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: "job"})
	if err != nil {
		t.Fatal(err)
	}
	cid := c.GetResult().GetId()
	ck, _ := alice.GetConsumerKey(ctx, &corev1.GetConsumerKeyRequest{Id: cid})
	deviceAsClient := coreClient(p, dev.Token, nil)
	consumerAsClient := coreClient(p, ck.GetToken(), nil)
	bobConsumer, _ := bob.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: "bobjob"})

	denied := connect.CodePermissionDenied
	// Another user's resources answer like missing ones: nothing reveals
	// what exists.
	hidden := connect.CodeNotFound
	unauth := connect.CodeUnauthenticated
	tests := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"bob cannot get alice's device", func() error { _, err := bob.GetDevice(ctx, &corev1.GetDeviceRequest{Id: did}); return err }, hidden},
		{"bob cannot update alice's device", func() error {
			n := "x"
			_, err := bob.UpdateDevice(ctx, &corev1.UpdateDeviceRequest{Id: did, Name: &n})
			return err
		}, hidden},
		{"bob cannot delete alice's device", func() error { _, err := bob.DeleteDevice(ctx, &corev1.DeleteDeviceRequest{Id: did}); return err }, hidden},
		{"bob cannot read alice's device key", func() error { _, err := bob.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: did}); return err }, hidden},
		{"bob cannot add a sensor to alice's device", func() error {
			_, err := bob.CreateSensor(ctx, &corev1.CreateSensorRequest{DeviceId: did, Name: "x", ValueType: corev1.ValueType_VALUE_TYPE_LONG})
			return err
		}, hidden},
		{"bob cannot grant alice's sensor to his consumer", func() error {
			_, err := bob.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: bobConsumer.GetResult().GetId(), SensorId: sid})
			return err
		}, hidden},
		{"bob cannot see alice's consumer", func() error { _, err := bob.GetConsumer(ctx, &corev1.GetConsumerRequest{Id: cid}); return err }, hidden},
		{"bob does not list alice's devices", func() error {
			l, err := bob.ListDevices(ctx, &corev1.ListDevicesRequest{})
			if err == nil && len(l.GetResult()) != 0 {
				return errors.New("bob sees devices he does not own")
			}
			return err
		}, 0},
		{"users cannot create users", func() error {
			_, err := bob.CreateUser(ctx, &corev1.CreateUserRequest{Username: "mallory", Password: "password-x"})
			return err
		}, denied},
		{"users cannot list users", func() error { _, err := bob.ListUsers(ctx, &corev1.ListUsersRequest{}); return err }, denied},
		{"users cannot read other users", func() error { _, err := bob.GetUser(ctx, &corev1.GetUserRequest{Id: 1}); return err }, denied},
		{"users cannot make themselves admin", func() error {
			r := corev1.Role_ROLE_ADMIN
			me, _ := bob.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
			_, err := bob.UpdateUser(ctx, &corev1.UpdateUserRequest{Id: me.GetResult().GetId(), Role: &r})
			return err
		}, denied},
		{"users cannot delete users", func() error { _, err := bob.DeleteUser(ctx, &corev1.DeleteUserRequest{Id: 1}); return err }, denied},
		{"device token cannot list devices", func() error { _, err := deviceAsClient.ListDevices(ctx, &corev1.ListDevicesRequest{}); return err }, denied},
		{"device token cannot read its own key", func() error {
			_, err := deviceAsClient.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: did})
			return err
		}, denied},
		{"device token cannot create devices", func() error {
			_, err := deviceAsClient.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: "x"})
			return err
		}, denied},
		{"consumer token cannot grant itself", func() error {
			_, err := consumerAsClient.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: cid, SensorId: sid})
			return err
		}, denied},
		{"consumer token cannot list consumers", func() error {
			_, err := consumerAsClient.ListConsumers(ctx, &corev1.ListConsumersRequest{})
			return err
		}, denied},
		{"no token", func() error {
			_, err := coreClient(p, "", nil).ListDevices(ctx, &corev1.ListDevicesRequest{})
			return err
		}, unauth},
		{"garbage token", func() error {
			_, err := coreClient(p, "garbage", nil).ListDevices(ctx, &corev1.ListDevicesRequest{})
			return err
		}, unauth},
		{"admin may read alice's device", func() error { _, err := admin.GetDevice(ctx, &corev1.GetDeviceRequest{Id: did}); return err }, 0},
		{"the last admin cannot be deleted", func() error { _, err := admin.DeleteUser(ctx, &corev1.DeleteUserRequest{Id: 1}); return err }, connect.CodeFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// REST answers with the matching HTTP statuses.
	foreign, missing := p.Do("GET", "/api/devices/"+dev.ID, bobTok, nil), p.Do("GET", "/api/devices/987654", bobTok, nil)
	if foreign.Status != 404 || string(foreign.Body) != string(missing.Body) {
		t.Fatalf("REST other user's device: %d %s, want the answer of a missing one: %d %s", foreign.Status, foreign.Body, missing.Status, missing.Body)
	}
	if r := p.Do("DELETE", "/api/users/1", p.AdminToken(), nil); r.Status != 400 || r.Str("code") != "failed_precondition" || r.Str("message") != "the last admin cannot be deleted" {
		t.Fatalf("REST deleting the last admin: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/api/devices/", "", nil); r.Status != 401 {
		t.Fatalf("REST no token: %d", r.Status)
	}
	if r := p.Do("GET", "/api/devices/", "not-a-token", nil); r.Status != 401 {
		t.Fatalf("REST bad token: %d", r.Status)
	}
	if r := p.Do("GET", "/api/devices/", dev.Token, nil); r.Status != 403 {
		t.Fatalf("REST device token: %d", r.Status)
	}
}

// TestKeyRotation: after RotateDeviceKey the old token is refused and the
// new one accepted (the harness sets the staleness bound to 200 ms).
func TestKeyRotation(t *testing.T) {
	p := Start(t, Options{})
	ctx := context.Background()
	adminTok := p.AdminToken()
	admin := coreClient(p, adminTok, nil)
	dev := p.NewDevice(adminTok, "rotating", "double")
	// A device token authenticates (403 = known caller, not allowed here),
	// a refused token does not (401).
	probe := func(tok string) connect.Code {
		_, err := coreClient(p, tok, nil).ListDevices(ctx, &corev1.ListDevicesRequest{})
		return code(err)
	}
	if c := probe(dev.Token); c != connect.CodePermissionDenied {
		t.Fatalf("fresh device token: %v", c)
	}
	rot, err := admin.RotateDeviceKey(ctx, &corev1.RotateDeviceKeyRequest{Id: mustID(t, dev.ID)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return probe(dev.Token) == connect.CodeUnauthenticated })
	if c := probe(rot.GetToken()); c != connect.CodePermissionDenied {
		t.Fatalf("rotated-in token: %v", c)
	}
	// GetDeviceKey now hands out the new generation.
	k, _ := admin.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: mustID(t, dev.ID)})
	if c := probe(k.GetToken()); c != connect.CodePermissionDenied {
		t.Fatalf("GetDeviceKey after rotation: %v", c)
	}
	// Password change retires user tokens.
	me, _ := admin.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
	if _, err := admin.ChangePassword(ctx, &corev1.ChangePasswordRequest{Id: me.GetResult().GetId(), CurrentPassword: p.AdminPassword, NewPassword: "another-password"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		_, err := admin.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
		return code(err) == connect.CodeUnauthenticated
	})
}

// TestRestartKeepsEverything: users, devices, keys and tokens survive a
// graceful restart and a kill -9.
func TestRestartKeepsEverything(t *testing.T) {
	p := Start(t, Options{})
	adminTok := p.AdminToken()
	dev := p.NewDevice(adminTok, "persistent", "long")
	p.Stop()
	p.Restart()
	if r := p.Do("GET", "/api/devices/"+dev.ID, adminTok, nil); r.Status != 200 || r.Str("result.name") != "persistent" {
		t.Fatalf("after restart: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/api/devices/", dev.Token, nil); r.Status != 403 {
		t.Fatalf("device token after restart should still authenticate (403 here), got %d", r.Status)
	}
	p.Kill()
	p.Restart()
	if r := p.Do("GET", "/api/devices/"+dev.ID+"/sensors/", p.SignIn("root", p.AdminPassword), nil); r.Status != 200 || r.Str("result") == "[]" {
		t.Fatalf("after kill -9: %d %s", r.Status, r.Body)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad id %q", s)
		}
		id = id*10 + int64(c-'0')
	}
	return id
}
