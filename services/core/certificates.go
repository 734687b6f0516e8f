package core

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// AddDeviceCertificate implements CoreService.AddDeviceCertificate. Owner or admin.
func (s *Service) AddDeviceCertificate(ctx context.Context, req *corev1.AddDeviceCertificateRequest) (*corev1.AddDeviceCertificateResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	fp, err := authn.NormalizeFingerprint(req.GetFingerprint())
	if err != nil {
		return nil, invalid("fingerprint", err.Error())
	}
	c, err := s.reg.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fp, DeviceID: d.ID})
	if errors.Is(err, registry.ErrAlreadyExists) {
		return nil, errorf(connect.CodeAlreadyExists, "this certificate fingerprint is already registered for this device")
	}
	if err != nil {
		return nil, s.storeErr(ctx, "device certificate", err)
	}
	s.audit(ctx, auditDeviceCertAdd, "device", d.ID, map[string]string{"fingerprint": fp})
	return &corev1.AddDeviceCertificateResponse{Result: certificatePB(c)}, nil
}

// ListDeviceCertificates implements CoreService.ListDeviceCertificates. Owner or admin.
func (s *Service) ListDeviceCertificates(ctx context.Context, req *corev1.ListDeviceCertificatesRequest) (*corev1.ListDeviceCertificatesResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	cs, err := s.reg.ListDeviceCertificates(ctx, d.ID)
	if err != nil {
		return nil, s.storeErr(ctx, "device certificates", err)
	}
	out := &corev1.ListDeviceCertificatesResponse{Result: make([]*corev1.DeviceCertificate, 0, len(cs))}
	for _, c := range cs {
		out.Result = append(out.Result, certificatePB(c))
	}
	return out, nil
}

// RemoveDeviceCertificate implements CoreService.RemoveDeviceCertificate. Owner or admin.
func (s *Service) RemoveDeviceCertificate(ctx context.Context, req *corev1.RemoveDeviceCertificateRequest) (*corev1.RemoveDeviceCertificateResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	fp, err := authn.NormalizeFingerprint(req.GetFingerprint())
	if err != nil {
		return nil, invalid("fingerprint", err.Error())
	}
	if err := s.reg.RemoveDeviceCertificate(ctx, d.ID, fp); err != nil {
		return nil, s.storeErr(ctx, "device certificate", err)
	}
	s.audit(ctx, auditDeviceCertRemove, "device", d.ID, map[string]string{"fingerprint": fp})
	return &corev1.RemoveDeviceCertificateResponse{}, nil
}

func certificatePB(c registry.DeviceCertificate) *corev1.DeviceCertificate {
	return &corev1.DeviceCertificate{Fingerprint: c.Fingerprint, DeviceId: c.DeviceID, CreateTime: ts(c.CreatedAt)}
}

// Certificates adapts a registry to authn.CertificateRegistry: whether a
// client certificate fingerprint is registered for the device it names.
type Certificates struct{ Reg registry.Registry }

// CertificateRegistered implements authn.CertificateRegistry.
func (c Certificates) CertificateRegistered(ctx context.Context, deviceID int64, fingerprint string) error {
	_, err := c.Reg.GetDeviceCertificate(ctx, deviceID, fingerprint)
	return err
}
