package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// auditDevicesImport records an import (one event per call, naming how many
// devices it created and whether it handed out their keys).
const auditDevicesImport = "devices.import"

// Import limits.
const (
	maxImportSensorsPerDevice = 1000
	maxImportSensors          = 100_000
	maxExternalID             = 200
)

// ImportDevices implements CoreService.ImportDevices. Users (devices of the
// caller).
func (s *Service) ImportDevices(ctx context.Context, req *corev1.ImportDevicesRequest) (*corev1.ImportDevicesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	in := req.GetDevices()
	if len(in) == 0 {
		return nil, invalid("devices", "required")
	}
	if len(in) > registry.MaxImport {
		return nil, errorf(connect.CodeInvalidArgument, "devices: at most %d per call, got %d", registry.MaxImport, len(in))
	}
	rows := make([]registry.NewDevice, len(in))
	seen := make(map[string]int, len(in))
	sensors := 0
	for i, d := range in {
		row, err := importRow(p.ID, d)
		if err != nil {
			return nil, rowError(i, err)
		}
		if row.ExternalID != "" {
			if j, dup := seen[row.ExternalID]; dup {
				return nil, rowError(i, invalid("external_id", fmt.Sprintf("repeats row %d", j)))
			}
			seen[row.ExternalID] = i
		}
		if sensors += len(row.Sensors); sensors > maxImportSensors {
			return nil, rowError(i, errorf(connect.CodeInvalidArgument, "sensors: at most %d sensors per call", maxImportSensors))
		}
		rows[i] = row
	}
	out, err := s.reg.CreateDevices(ctx, rows)
	if err != nil {
		var re *registry.RowError
		if errors.As(err, &re) {
			return nil, rowError(re.Row, errorf(connect.CodeInvalidArgument, "%s: %s", re.Field, rowReason(re.Err)))
		}
		return nil, s.storeErr(ctx, "devices", err)
	}
	if err := s.provisionImported(ctx, out); err != nil {
		return nil, err
	}
	res := &corev1.ImportDevicesResponse{Results: make([]*corev1.ImportedDevice, len(out))}
	for i, d := range out {
		r := &corev1.ImportedDevice{Id: d.Device.ID, ExternalId: rows[i].ExternalID, Created: d.Created, SensorIds: make([]int64, len(rows[i].Sensors))}
		if d.Created {
			res.Created++
			for j, sn := range d.Sensors {
				r.SensorIds[j] = sn.ID
			}
		} else {
			for j, want := range rows[i].Sensors {
				for _, sn := range d.Sensors {
					if sn.Path == want.Path && sn.Name == want.Name {
						r.SensorIds[j] = sn.ID
						break
					}
				}
			}
		}
		if req.GetReturnKeys() {
			// A new device's key never expires; an existing one's keeps the
			// expiry its last rotation gave it (as GetDeviceKey).
			var exp time.Time
			if !d.Created {
				if exp, err = s.reg.KeyExpiry(ctx, registry.KeyDevice, d.Device.ID, d.Device.KeyGen); err != nil {
					return nil, s.storeErr(ctx, "device", err)
				}
			}
			// The devices are written by now: an existing device whose key
			// expired gets no key (rotate it) instead of failing the call.
			if exp.IsZero() || time.Until(exp) > 0 {
				if r.Key, _, err = s.issueKey(ctx, authn.KindDevice, d.Device.ID, d.Device.KeyGen, exp); err != nil {
					return nil, err
				}
			}
		}
		res.Results[i] = r
	}
	s.audit(ctx, auditDevicesImport, "user", p.ID, map[string]string{
		"rows": strconv.Itoa(len(rows)), "created": strconv.Itoa(int(res.Created)), "keys_returned": strconv.FormatBool(req.GetReturnKeys()),
	})
	return res, nil
}

// importRow validates one row with the rules of CreateDevice and
// CreateSensor.
func importRow(owner int64, d *corev1.DeviceImport) (registry.NewDevice, error) {
	if err := checkName("name", d.GetName()); err != nil {
		return registry.NewDevice{}, err
	}
	if err := checkText("description", d.GetDescription(), 0, 2000); err != nil {
		return registry.NewDevice{}, err
	}
	if err := checkLabels(d.GetLabels()); err != nil {
		return registry.NewDevice{}, err
	}
	if err := checkText("external_id", d.GetExternalId(), 0, maxExternalID); err != nil {
		return registry.NewDevice{}, err
	}
	if len(d.GetSensors()) > maxImportSensorsPerDevice {
		return registry.NewDevice{}, errorf(connect.CodeInvalidArgument, "sensors: at most %d per device", maxImportSensorsPerDevice)
	}
	row := registry.NewDevice{
		Device:     registry.Device{OwnerID: owner, Name: d.GetName(), Description: d.GetDescription(), Labels: d.GetLabels()},
		ExternalID: d.GetExternalId(),
		Sensors:    make([]registry.Sensor, len(d.GetSensors())),
	}
	for j, sn := range d.GetSensors() {
		s, err := importSensor(sn)
		if err != nil {
			return row, prefixed(fmt.Sprintf("sensors[%d].", j), err)
		}
		row.Sensors[j] = s
	}
	return row, nil
}

// importSensor validates one sensor of an imported row.
func importSensor(sn *corev1.SensorImport) (registry.Sensor, error) {
	if err := checkSensorName(sn.GetName()); err != nil {
		return registry.Sensor{}, err
	}
	if err := checkText("description", sn.GetDescription(), 0, 2000); err != nil {
		return registry.Sensor{}, err
	}
	if err := checkText("unit", sn.GetUnit(), 0, 50); err != nil {
		return registry.Sensor{}, err
	}
	path, err := cleanPath(sn.GetPath())
	if err != nil {
		return registry.Sensor{}, err
	}
	typ, err := sensorType(sn.GetValueType(), sn.GetMapping())
	if err != nil {
		return registry.Sensor{}, err
	}
	return registry.Sensor{Name: sn.GetName(), Description: sn.GetDescription(), Unit: sn.GetUnit(), Type: typ, Path: path}, nil
}

// prefixed puts in before the field a validation error names.
func prefixed(in string, err error) error {
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New(in+msg))
}

// rowError turns a validation error of row i ("field: problem") into the
// batch's refusal: InvalidArgument "devices[i].field: problem (row i)" with a
// BadRequest field violation.
func rowError(i int, err error) error {
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	field, problem, ok := strings.Cut(msg, ": ")
	if !ok {
		field, problem = "", msg
	}
	path := fmt.Sprintf("devices[%d]", i)
	if field != "" {
		path += "." + field
	}
	out := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s (row %d; the whole batch was refused)", path, problem, i))
	if d, derr := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: path, Description: problem}}}); derr == nil {
		out.AddDetail(d)
	}
	return out
}

// rowReason says why the registry refused a row, without internals.
func rowReason(err error) string {
	switch {
	case errors.Is(err, registry.ErrAlreadyExists):
		return "already exists (a device name must be unique among your devices, a sensor's name unique within its path)"
	case errors.Is(err, registry.ErrNotFound):
		return "not found"
	}
	return "refused"
}

// provisionImported tells the provisioners about the created sensors; if
// one fails, everything the call created is removed again (all or nothing).
func (s *Service) provisionImported(ctx context.Context, out []registry.ImportedDevice) error {
	if len(s.prov) == 0 {
		return nil
	}
	var done []registry.Sensor
	for _, d := range out {
		if !d.Created {
			continue
		}
		for _, sn := range d.Sensors {
			for i, p := range s.prov {
				if err := p.SensorCreated(ctx, sn); err != nil {
					for _, q := range s.prov[:i] {
						_ = q.SensorDeleted(ctx, sn)
					}
					s.log.ErrorContext(ctx, "provision imported sensor", "sensor_id", sn.ID, "err", err)
					s.undoImport(ctx, out, done)
					return errorf(connect.CodeUnavailable, "could not provision storage for the sensors; nothing was imported, try again")
				}
			}
			done = append(done, sn)
		}
	}
	return nil
}

func (s *Service) undoImport(ctx context.Context, out []registry.ImportedDevice, provisioned []registry.Sensor) {
	for _, sn := range provisioned {
		s.deprovision(ctx, sn)
	}
	for _, d := range out {
		if d.Created {
			if _, err := s.reg.DeleteDevice(ctx, d.Device.ID); err != nil {
				s.log.ErrorContext(ctx, "undo device import", "device_id", d.Device.ID, "err", err)
			}
		}
	}
}
