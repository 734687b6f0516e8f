package core

import (
	"context"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// CreateConsumer implements CoreService.CreateConsumer. Users.
func (s *Service) CreateConsumer(ctx context.Context, req *corev1.CreateConsumerRequest) (*corev1.CreateConsumerResponse, error) {
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
	c, err := s.reg.CreateConsumer(ctx, registry.Consumer{OwnerID: p.ID, Name: req.GetName(), Description: req.GetDescription()})
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	s.audit(ctx, auditConsumerCreate, "consumer", c.ID, map[string]string{"name": c.Name})
	return &corev1.CreateConsumerResponse{Result: consumerPB(c)}, nil
}

// ListConsumers implements CoreService.ListConsumers. Users (own; admins all).
func (s *Service) ListConsumers(ctx context.Context, req *corev1.ListConsumersRequest) (*corev1.ListConsumersResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	owner := p.ID
	if p.Admin {
		owner = 0
	}
	cs, err := s.reg.ListConsumers(ctx, owner, pg)
	if err != nil {
		return nil, s.storeErr(ctx, "consumers", err)
	}
	out := &corev1.ListConsumersResponse{}
	out.Result, out.NextPageToken = toPage(cs, pg.Limit, func(c registry.Consumer) int64 { return c.ID }, consumerPB)
	return out, nil
}

func (s *Service) ownedConsumer(ctx context.Context, id int64) (registry.Consumer, authn.Principal, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return registry.Consumer{}, p, err
	}
	c, err := s.reg.GetConsumer(ctx, id)
	if err != nil {
		return c, p, s.storeErr(ctx, "consumer", err)
	}
	if !owns(p, c.OwnerID) {
		return c, p, denied("consumer")
	}
	return c, p, nil
}

// GetConsumer implements CoreService.GetConsumer. Owner or admin.
func (s *Service) GetConsumer(ctx context.Context, req *corev1.GetConsumerRequest) (*corev1.GetConsumerResponse, error) {
	c, _, err := s.ownedConsumer(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &corev1.GetConsumerResponse{Result: consumerPB(c)}, nil
}

// UpdateConsumer implements CoreService.UpdateConsumer. Owner or admin.
func (s *Service) UpdateConsumer(ctx context.Context, req *corev1.UpdateConsumerRequest) (*corev1.UpdateConsumerResponse, error) {
	c, _, err := s.ownedConsumer(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if req.Name != nil {
		if err := checkName("name", req.GetName()); err != nil {
			return nil, err
		}
		c.Name = req.GetName()
	}
	if req.Description != nil {
		if err := checkText("description", req.GetDescription(), 0, 2000); err != nil {
			return nil, err
		}
		c.Description = req.GetDescription()
	}
	c, err = s.reg.UpdateConsumer(ctx, c)
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	return &corev1.UpdateConsumerResponse{Result: consumerPB(c)}, nil
}

// DeleteConsumer implements CoreService.DeleteConsumer. Owner or admin.
func (s *Service) DeleteConsumer(ctx context.Context, req *corev1.DeleteConsumerRequest) (*corev1.DeleteConsumerResponse, error) {
	if _, _, err := s.ownedConsumer(ctx, req.GetId()); err != nil {
		return nil, err
	}
	if err := s.reg.DeleteConsumer(ctx, req.GetId()); err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	s.audit(ctx, auditConsumerDelete, "consumer", req.GetId(), nil)
	return &corev1.DeleteConsumerResponse{}, nil
}

// GetConsumerKey implements CoreService.GetConsumerKey. Owner or admin.
func (s *Service) GetConsumerKey(ctx context.Context, req *corev1.GetConsumerKeyRequest) (*corev1.GetConsumerKeyResponse, error) {
	c, _, err := s.ownedConsumer(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	exp, err := s.reg.KeyExpiry(ctx, registry.KeyConsumer, c.ID, c.KeyGen)
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	tok, expPB, err := s.issueKey(ctx, authn.KindConsumer, c.ID, c.KeyGen, exp)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, auditConsumerKeyIss, "consumer", c.ID, expiryDetail(exp))
	return &corev1.GetConsumerKeyResponse{Token: tok, ExpireTime: expPB}, nil
}

// RotateConsumerKey implements CoreService.RotateConsumerKey. Owner or admin.
func (s *Service) RotateConsumerKey(ctx context.Context, req *corev1.RotateConsumerKeyRequest) (*corev1.RotateConsumerKeyResponse, error) {
	exp, err := keyExpiry(req.GetTtl())
	if err != nil {
		return nil, err
	}
	if _, _, err := s.ownedConsumer(ctx, req.GetId()); err != nil {
		return nil, err
	}
	gen, err := s.reg.RotateKey(ctx, registry.KeyConsumer, req.GetId(), exp)
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	s.audit(ctx, auditConsumerKeyRot, "consumer", req.GetId(), expiryDetail(exp))
	tok, expPB, err := s.issueKey(ctx, authn.KindConsumer, req.GetId(), gen, exp)
	if err != nil {
		return nil, err
	}
	return &corev1.RotateConsumerKeyResponse{Token: tok, ExpireTime: expPB}, nil
}

// GrantSensor implements CoreService.GrantSensor. Owner of both (or admin).
func (s *Service) GrantSensor(ctx context.Context, req *corev1.GrantSensorRequest) (*corev1.GrantSensorResponse, error) {
	_, p, err := s.ownedConsumer(ctx, req.GetConsumerId())
	if err != nil {
		return nil, err
	}
	if req.GetSensorId() <= 0 {
		return nil, invalid("sensor_id", "required")
	}
	sn, err := s.reg.GetSensor(ctx, req.GetSensorId())
	if err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	d, err := s.reg.GetDevice(ctx, sn.DeviceID)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	if !owns(p, d.OwnerID) {
		return nil, denied("sensor")
	}
	if err := s.reg.Grant(ctx, req.GetConsumerId(), sn.ID); err != nil {
		return nil, s.storeErr(ctx, "grant", err)
	}
	s.audit(ctx, auditGrantCreate, "consumer", req.GetConsumerId(), idDetail("sensor_id", sn.ID))
	c, err := s.reg.GetConsumer(ctx, req.GetConsumerId())
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	return &corev1.GrantSensorResponse{Result: consumerPB(c)}, nil
}

// RevokeSensor implements CoreService.RevokeSensor. Owner or admin.
func (s *Service) RevokeSensor(ctx context.Context, req *corev1.RevokeSensorRequest) (*corev1.RevokeSensorResponse, error) {
	if _, _, err := s.ownedConsumer(ctx, req.GetConsumerId()); err != nil {
		return nil, err
	}
	if err := s.reg.Revoke(ctx, req.GetConsumerId(), req.GetSensorId()); err != nil {
		return nil, s.storeErr(ctx, "grant", err)
	}
	s.audit(ctx, auditGrantRevoke, "consumer", req.GetConsumerId(), idDetail("sensor_id", req.GetSensorId()))
	c, err := s.reg.GetConsumer(ctx, req.GetConsumerId())
	if err != nil {
		return nil, s.storeErr(ctx, "consumer", err)
	}
	return &corev1.RevokeSensorResponse{Result: consumerPB(c)}, nil
}

func consumerPB(c registry.Consumer) *corev1.Consumer {
	return &corev1.Consumer{Id: c.ID, Name: c.Name, Description: c.Description, OwnerId: c.OwnerID, SensorIds: c.SensorIDs, CreateTime: ts(c.CreatedAt), UpdateTime: ts(c.UpdatedAt)}
}
