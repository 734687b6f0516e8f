package core

import (
	"context"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// CreateDevice implements CoreService.CreateDevice. Users.
func (s *Service) CreateDevice(ctx context.Context, req *corev1.CreateDeviceRequest) (*corev1.CreateDeviceResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName()); err != nil {
		return nil, err
	}
	if err := checkText("description", req.GetDescription(), 0, 2000); err != nil {
		return nil, err
	}
	if err := checkLabels(req.GetLabels()); err != nil {
		return nil, err
	}
	rate, burst, err := ingestLimit(req.GetIngestLimit())
	if err != nil {
		return nil, err
	}
	if (rate != 0 || burst != 0) && !p.Admin {
		return nil, errIngestLimitAdmin()
	}
	d, err := s.reg.CreateDevice(ctx, registry.Device{OwnerID: p.ID, Name: req.GetName(), Description: req.GetDescription(), Labels: req.GetLabels(),
		IngestRate: rate, IngestBurst: burst})
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	if rate != 0 || burst != 0 {
		s.audit(ctx, auditDeviceIngestLimit, "device", d.ID, limitDetail(rate, burst))
	}
	return &corev1.CreateDeviceResponse{Result: devicePB(d)}, nil
}

// ListDevices implements CoreService.ListDevices. Users (own devices; admins all).
func (s *Service) ListDevices(ctx context.Context, req *corev1.ListDevicesRequest) (*corev1.ListDevicesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	f := registry.DeviceFilter{NameContains: req.GetNameFilter()}
	if !p.Admin {
		f.OwnerID = p.ID
	}
	ds, err := s.reg.ListDevices(ctx, f, pg)
	if err != nil {
		return nil, s.storeErr(ctx, "devices", err)
	}
	out := &corev1.ListDevicesResponse{}
	out.Result, out.NextPageToken = toPage(ds, pg.Limit, func(d registry.Device) int64 { return d.ID }, devicePB)
	return out, nil
}

// ownedDevice loads a device the calling user may manage.
func (s *Service) ownedDevice(ctx context.Context, id int64) (registry.Device, authn.Principal, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return registry.Device{}, p, err
	}
	d, err := s.reg.GetDevice(ctx, id)
	if err != nil {
		return d, p, s.storeErr(ctx, "device", err)
	}
	if !owns(p, d.OwnerID) {
		return d, p, denied("device")
	}
	return d, p, nil
}

// GetDevice implements CoreService.GetDevice. Owner or admin.
func (s *Service) GetDevice(ctx context.Context, req *corev1.GetDeviceRequest) (*corev1.GetDeviceResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &corev1.GetDeviceResponse{Result: devicePB(d)}, nil
}

// UpdateDevice implements CoreService.UpdateDevice. Owner or admin.
func (s *Service) UpdateDevice(ctx context.Context, req *corev1.UpdateDeviceRequest) (*corev1.UpdateDeviceResponse, error) {
	d, p, err := s.ownedDevice(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	mask := map[string]bool{}
	for _, path := range req.GetUpdateMask().GetPaths() {
		switch path {
		case "name", "description", "labels", "ingest_limit":
			mask[path] = true
		default:
			return nil, invalid("update_mask", "unknown field "+path)
		}
	}
	all := len(mask) == 0
	if (all || mask["name"]) && req.Name != nil {
		if err := checkName("name", req.GetName()); err != nil {
			return nil, err
		}
		d.Name = req.GetName()
	}
	if (all || mask["description"]) && req.Description != nil {
		if err := checkText("description", req.GetDescription(), 0, 2000); err != nil {
			return nil, err
		}
		d.Description = req.GetDescription()
	}
	if mask["labels"] || (all && len(req.GetLabels()) > 0) {
		if err := checkLabels(req.GetLabels()); err != nil {
			return nil, err
		}
		d.Labels = req.GetLabels()
	}
	limitChanged := false
	if mask["ingest_limit"] || (all && req.IngestLimit != nil) {
		rate, burst, err := ingestLimit(req.GetIngestLimit())
		if err != nil {
			return nil, err
		}
		if (rate != d.IngestRate || burst != d.IngestBurst) && !p.Admin {
			return nil, errIngestLimitAdmin()
		}
		limitChanged = rate != d.IngestRate || burst != d.IngestBurst
		d.IngestRate, d.IngestBurst = rate, burst
	}
	d, err = s.reg.UpdateDevice(ctx, d)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	if limitChanged {
		s.audit(ctx, auditDeviceIngestLimit, "device", d.ID, limitDetail(d.IngestRate, d.IngestBurst))
	}
	return &corev1.UpdateDeviceResponse{Result: devicePB(d)}, nil
}

// DeleteDevice implements CoreService.DeleteDevice. Owner or admin.
func (s *Service) DeleteDevice(ctx context.Context, req *corev1.DeleteDeviceRequest) (*corev1.DeleteDeviceResponse, error) {
	if _, _, err := s.ownedDevice(ctx, req.GetId()); err != nil {
		return nil, err
	}
	sensors, err := s.reg.DeleteDevice(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	s.audit(ctx, auditDeviceDelete, "device", req.GetId(), nil)
	for _, sn := range sensors {
		s.deprovision(ctx, sn)
	}
	return &corev1.DeleteDeviceResponse{}, nil
}

// GetDeviceKey implements CoreService.GetDeviceKey. Owner or admin.
func (s *Service) GetDeviceKey(ctx context.Context, req *corev1.GetDeviceKeyRequest) (*corev1.GetDeviceKeyResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	exp, err := s.reg.KeyExpiry(ctx, registry.KeyDevice, d.ID, d.KeyGen)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	tok, expPB, err := s.issueKey(ctx, authn.KindDevice, d.ID, d.KeyGen, exp)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, auditDeviceKeyIssue, "device", d.ID, expiryDetail(exp))
	return &corev1.GetDeviceKeyResponse{Token: tok, ExpireTime: expPB}, nil
}

// RotateDeviceKey implements CoreService.RotateDeviceKey. Owner or admin.
func (s *Service) RotateDeviceKey(ctx context.Context, req *corev1.RotateDeviceKeyRequest) (*corev1.RotateDeviceKeyResponse, error) {
	exp, err := keyExpiry(req.GetTtl())
	if err != nil {
		return nil, err
	}
	if _, _, err := s.ownedDevice(ctx, req.GetId()); err != nil {
		return nil, err
	}
	gen, err := s.reg.RotateKey(ctx, registry.KeyDevice, req.GetId(), exp)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	s.audit(ctx, auditDeviceKeyRot, "device", req.GetId(), expiryDetail(exp))
	tok, expPB, err := s.issueKey(ctx, authn.KindDevice, req.GetId(), gen, exp)
	if err != nil {
		return nil, err
	}
	return &corev1.RotateDeviceKeyResponse{Token: tok, ExpireTime: expPB}, nil
}

func checkName(field, v string) error {
	if v == "" {
		return invalid(field, "required")
	}
	for _, r := range v {
		if unicode.IsControl(r) || isBidiControl(r) {
			return invalid(field, "must not contain control characters (NUL, newlines, tabs) or bidirectional-override characters")
		}
	}
	return checkText(field, v, 1, 200)
}

// isBidiControl reports the invisible characters that reorder text
// (embeddings, overrides, isolates and marks), which let a name display as
// another.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

func checkText(field, v string, min, max int) error {
	if !utf8.ValidString(v) {
		return invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n < min || n > max {
		return errorf(connect.CodeInvalidArgument, "%s: must have %d to %d characters", field, min, max)
	}
	return nil
}

func checkLabels(l map[string]string) error {
	if len(l) > 64 {
		return invalid("labels", "at most 64 labels")
	}
	for k, v := range l {
		if err := checkText("labels key", k, 1, 63); err != nil {
			return err
		}
		if err := checkText("labels value", v, 0, 256); err != nil {
			return err
		}
	}
	return nil
}

func devicePB(d registry.Device) *corev1.Device {
	pb := &corev1.Device{Id: d.ID, Name: d.Name, Description: d.Description, OwnerId: d.OwnerID, Labels: d.Labels, CreateTime: ts(d.CreatedAt), UpdateTime: ts(d.UpdatedAt)}
	if d.IngestRate != 0 || d.IngestBurst != 0 {
		pb.IngestLimit = &corev1.IngestLimit{ReadingsPerSecond: d.IngestRate, Burst: d.IngestBurst}
	}
	return pb
}

// errIngestLimitAdmin refuses a non-admin's change of a device's ingest
// limit: the limit protects the platform from a flooding device, so its
// owner must not be able to lift (or reset) it.
func errIngestLimitAdmin() error {
	return errorf(connect.CodePermissionDenied, "ingest_limit: only an admin sets or changes a device's ingest limit")
}

// ingestLimit checks a device's ingest limit override (nil: the defaults).
// limitDetail describes an ingest limit for the audit log (0: the platform
// default).
func limitDetail(rate float64, burst int64) map[string]string {
	return map[string]string{"readings_per_second": strconv.FormatFloat(rate, 'g', -1, 64), "burst": strconv.FormatInt(burst, 10)}
}

func ingestLimit(l *corev1.IngestLimit) (rate float64, burst int64, err error) {
	rate, burst = l.GetReadingsPerSecond(), l.GetBurst()
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return 0, 0, invalid("ingest_limit.readings_per_second", "must be a finite number ≥ 0 (0: the platform default)")
	}
	if burst < 0 {
		return 0, 0, invalid("ingest_limit.burst", "must be ≥ 0 (0: the platform default)")
	}
	return rate, burst, nil
}
