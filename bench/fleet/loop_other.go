//go:build !linux

package main

// newMQTTLoop: no event loop off Linux; the MQTT devices run on goroutineLoop.
func newMQTTLoop([]client) (deviceLoop, error) { return nil, nil }

// newWSLoop: no event loop off Linux; the WebSocket devices run on goroutineLoop.
func newWSLoop([]client) (deviceLoop, error) { return nil, nil }
