// Package ari is earpiece's client for the Asterisk REST Interface (ARI):
// typed REST calls for the channels, bridges, endpoints, applications,
// playbacks and recordings resources and part of asterisk (info, modules,
// global variables), and one ordered, bounded stream of
// typed Stasis events read from the events WebSocket, with reconnection and
// the connection's state changes delivered in the same stream.
//
// Paths, parameters, models and events follow Asterisk's own Swagger
// description (rest-api/api-docs/*.json of Asterisk 22); the event structs in
// events_gen.go are generated from its events.json, as the test Asterisk
// (internal/asterisktest) ships it. Nothing here reads the environment or logs
// credentials: configuration comes in a Config value and the ARI user and
// password travel only in the HTTP Basic Authorization header.
package ari

// Reads events.json from the test Asterisk's root (scripts/asterisk-root.sh
// builds it if it is missing); -api DIR reads it from DIR instead.
//go:generate go run ./internal/gen -out events_gen.go
