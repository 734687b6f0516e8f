package main

// newMQTTLoop: no event loop in this build; the MQTT devices run on goroutineLoop.
func newMQTTLoop([]client) (deviceLoop, error) { return nil, nil }
