//go:build !linux

package main

// newMQTTLoop: no event loop off Linux; the MQTT devices run on goroutineLoop.
func newMQTTLoop([]client) (deviceLoop, error) { return nil, nil }
