package core

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// CreateSensor implements CoreService.CreateSensor. Device owner or admin.
func (s *Service) CreateSensor(ctx context.Context, req *corev1.CreateSensorRequest) (*corev1.CreateSensorResponse, error) {
	if _, _, err := s.ownedDevice(ctx, req.GetDeviceId()); err != nil {
		return nil, err
	}
	if err := checkSensorName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkText("description", req.GetDescription(), 0, 2000); err != nil {
		return nil, err
	}
	if err := checkText("unit", req.GetUnit(), 0, 50); err != nil {
		return nil, err
	}
	path, err := cleanPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	typ, err := sensorType(req.GetValueType(), req.GetMapping())
	if err != nil {
		return nil, err
	}
	sn, err := s.reg.CreateSensor(ctx, registry.Sensor{DeviceID: req.GetDeviceId(), Name: req.GetName(), Description: req.GetDescription(), Unit: req.GetUnit(), Type: typ, Path: path})
	if err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	for i, p := range s.prov {
		if err := p.SensorCreated(ctx, sn); err != nil {
			// Undo: nothing may be half-written.
			for _, q := range s.prov[:i] {
				_ = q.SensorDeleted(ctx, sn)
			}
			if derr := s.reg.DeleteSensor(ctx, sn.ID); derr != nil {
				s.log.ErrorContext(ctx, "undo sensor create", "sensor_id", sn.ID, "err", derr)
			}
			s.log.ErrorContext(ctx, "provision sensor", "sensor_id", sn.ID, "err", err)
			return nil, errorf(connect.CodeUnavailable, "could not provision storage for the sensor; try again")
		}
	}
	return &corev1.CreateSensorResponse{Sensor: sensorPB(sn)}, nil
}

func (s *Service) deprovision(ctx context.Context, sn registry.Sensor) {
	for _, p := range s.prov {
		if err := p.SensorDeleted(ctx, sn); err != nil {
			s.log.WarnContext(ctx, "deprovision sensor", "sensor_id", sn.ID, "err", err)
		}
	}
}

// ListSensors implements CoreService.ListSensors. Device owner or admin.
func (s *Service) ListSensors(ctx context.Context, req *corev1.ListSensorsRequest) (*corev1.ListSensorsResponse, error) {
	if dr, ok := s.reg.(registry.DeviceSensorsReader); ok {
		// The device (for its owner) and its sensors in one registry read.
		p, err := requireUser(ctx)
		if err != nil {
			return nil, err
		}
		d, ss, err := dr.DeviceWithSensors(ctx, req.GetDeviceId())
		if err != nil {
			return nil, s.storeErr(ctx, "device", err)
		}
		if !owns(p, d.OwnerID) {
			return nil, denied("device")
		}
		return &corev1.ListSensorsResponse{Result: convert(ss, sensorPB)}, nil
	}
	if _, _, err := s.ownedDevice(ctx, req.GetDeviceId()); err != nil {
		return nil, err
	}
	ss, err := s.reg.ListSensors(ctx, req.GetDeviceId())
	if err != nil {
		return nil, s.storeErr(ctx, "sensors", err)
	}
	return &corev1.ListSensorsResponse{Result: convert(ss, sensorPB)}, nil
}

// ownedSensor loads a sensor of an owned device.
func (s *Service) ownedSensor(ctx context.Context, deviceID, id int64) (registry.Sensor, error) {
	if _, _, err := s.ownedDevice(ctx, deviceID); err != nil {
		return registry.Sensor{}, err
	}
	sn, err := s.reg.GetSensor(ctx, id)
	if err != nil {
		return sn, s.storeErr(ctx, "sensor", err)
	}
	if sn.DeviceID != deviceID {
		return sn, errorf(connect.CodeNotFound, "sensor not found")
	}
	return sn, nil
}

// GetSensor implements CoreService.GetSensor. Device owner or admin.
func (s *Service) GetSensor(ctx context.Context, req *corev1.GetSensorRequest) (*corev1.GetSensorResponse, error) {
	sn, err := s.ownedSensor(ctx, req.GetDeviceId(), req.GetId())
	if err != nil {
		return nil, err
	}
	return &corev1.GetSensorResponse{Sensor: sensorPB(sn)}, nil
}

// UpdateSensor implements CoreService.UpdateSensor. Device owner or admin.
func (s *Service) UpdateSensor(ctx context.Context, req *corev1.UpdateSensorRequest) (*corev1.UpdateSensorResponse, error) {
	sn, err := s.ownedSensor(ctx, req.GetDeviceId(), req.GetId())
	if err != nil {
		return nil, err
	}
	if req.Name != nil {
		if err := checkSensorName(req.GetName()); err != nil {
			return nil, err
		}
		sn.Name = req.GetName()
	}
	if req.Description != nil {
		if err := checkText("description", req.GetDescription(), 0, 2000); err != nil {
			return nil, err
		}
		sn.Description = req.GetDescription()
	}
	if req.Unit != nil {
		if err := checkText("unit", req.GetUnit(), 0, 50); err != nil {
			return nil, err
		}
		sn.Unit = req.GetUnit()
	}
	if req.Path != nil {
		if sn.Path, err = cleanPath(req.GetPath()); err != nil {
			return nil, err
		}
	}
	sn, err = s.reg.UpdateSensor(ctx, sn)
	if err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	return &corev1.UpdateSensorResponse{Sensor: sensorPB(sn)}, nil
}

// DeleteSensor implements CoreService.DeleteSensor. Device owner or admin.
func (s *Service) DeleteSensor(ctx context.Context, req *corev1.DeleteSensorRequest) (*corev1.DeleteSensorResponse, error) {
	sn, err := s.ownedSensor(ctx, req.GetDeviceId(), req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.reg.DeleteSensor(ctx, sn.ID); err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	s.deprovision(ctx, sn)
	return &corev1.DeleteSensorResponse{}, nil
}

// GetDeviceTree implements CoreService.GetDeviceTree. Device owner or admin.
func (s *Service) GetDeviceTree(ctx context.Context, req *corev1.GetDeviceTreeRequest) (*corev1.GetDeviceTreeResponse, error) {
	d, _, err := s.ownedDevice(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	ss, err := s.reg.ListSensors(ctx, d.ID)
	if err != nil {
		return nil, s.storeErr(ctx, "sensors", err)
	}
	return &corev1.GetDeviceTreeResponse{Device: devicePB(d), Root: BuildTree(ss)}, nil
}

// BuildTree arranges sensors by path under a root node. Path nodes come
// before sensors among siblings; each group is sorted by name.
func BuildTree(ss []registry.Sensor) *corev1.TreeNode {
	root := &corev1.TreeNode{}
	for _, sn := range ss {
		n := root
		if sn.Path != "" {
			for _, seg := range strings.Split(sn.Path, "/") {
				n = child(n, seg)
			}
		}
		n.Children = append(n.Children, &corev1.TreeNode{Name: sn.Name, Path: join(sn.Path, sn.Name), Sensor: sensorPB(sn)})
	}
	sortTree(root)
	return root
}

func child(n *corev1.TreeNode, seg string) *corev1.TreeNode {
	for _, c := range n.Children {
		if c.Sensor == nil && c.Name == seg {
			return c
		}
	}
	c := &corev1.TreeNode{Name: seg, Path: join(n.Path, seg)}
	n.Children = append(n.Children, c)
	return c
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

func sortTree(n *corev1.TreeNode) {
	sort.SliceStable(n.Children, func(i, j int) bool {
		a, b := n.Children[i], n.Children[j]
		if (a.Sensor == nil) != (b.Sensor == nil) {
			return a.Sensor == nil
		}
		return a.Name < b.Name
	})
	for _, c := range n.Children {
		sortTree(c)
	}
}

func checkSensorName(v string) error {
	if err := checkName("name", v); err != nil {
		return err
	}
	if strings.Contains(v, "/") {
		return invalid("name", "must not contain \"/\"")
	}
	return nil
}

// cleanPath validates a tree path: "/"-separated non-empty segments.
func cleanPath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if err := checkText("path", p, 1, 500); err != nil {
		return "", err
	}
	segs := strings.Split(p, "/")
	if len(segs) > 16 {
		return "", invalid("path", "at most 16 levels")
	}
	for _, seg := range segs {
		if strings.TrimSpace(seg) == "" {
			return "", invalid("path", "segments must not be empty")
		}
	}
	return p, nil
}

// fromValueType maps the API's value types to the registry's.
var fromValueType = map[corev1.ValueType]registry.ValueType{
	corev1.ValueType_VALUE_TYPE_DOUBLE: registry.TypeDouble, corev1.ValueType_VALUE_TYPE_LONG: registry.TypeLong,
	corev1.ValueType_VALUE_TYPE_BOOLEAN: registry.TypeBoolean, corev1.ValueType_VALUE_TYPE_STRING: registry.TypeString,
	corev1.ValueType_VALUE_TYPE_OBJECT: registry.TypeObject,
}

// typeAliases maps the original platform's mapping types (Elasticsearch
// field types) to value types.
var typeAliases = map[string]registry.ValueType{
	"double": registry.TypeDouble, "float": registry.TypeDouble, "half_float": registry.TypeDouble, "scaled_float": registry.TypeDouble,
	"long": registry.TypeLong, "integer": registry.TypeLong, "int": registry.TypeLong, "short": registry.TypeLong, "byte": registry.TypeLong,
	"boolean": registry.TypeBoolean, "bool": registry.TypeBoolean,
	"string": registry.TypeString, "keyword": registry.TypeString, "text": registry.TypeString,
	"object": registry.TypeObject, "nested": registry.TypeObject,
}

// sensorType reconciles value_type and the original API's mapping string.
func sensorType(vt corev1.ValueType, mapping string) (registry.ValueType, error) {
	t, ok := fromValueType[vt]
	if !ok && vt != corev1.ValueType_VALUE_TYPE_UNSPECIFIED {
		return "", invalid("value_type", "unknown value type")
	}
	if mapping != "" {
		var m struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(mapping), &m); err != nil {
			return "", invalid("mapping", `must be a JSON object such as {"type":"double"}`)
		}
		mt, known := typeAliases[strings.ToLower(m.Type)]
		if !known {
			return "", invalid("mapping", "type must be one of double, long, boolean, string, object")
		}
		if ok && mt != t {
			return "", invalid("mapping", "type disagrees with value_type")
		}
		return mt, nil
	}
	if !ok {
		return "", invalid("value_type", `required (or give mapping, e.g. {"type":"double"})`)
	}
	return t, nil
}

var typePB = map[registry.ValueType]corev1.ValueType{
	registry.TypeDouble: corev1.ValueType_VALUE_TYPE_DOUBLE, registry.TypeLong: corev1.ValueType_VALUE_TYPE_LONG,
	registry.TypeBoolean: corev1.ValueType_VALUE_TYPE_BOOLEAN, registry.TypeString: corev1.ValueType_VALUE_TYPE_STRING,
	registry.TypeObject: corev1.ValueType_VALUE_TYPE_OBJECT,
}

func sensorPB(sn registry.Sensor) *corev1.Sensor {
	return &corev1.Sensor{
		Id: sn.ID, DeviceId: sn.DeviceID, Name: sn.Name, Description: sn.Description, Unit: sn.Unit,
		ValueType: typePB[sn.Type], Path: sn.Path, Mapping: `{"type":"` + string(sn.Type) + `"}`,
		CreateTime: ts(sn.CreatedAt), UpdateTime: ts(sn.UpdatedAt),
	}
}
