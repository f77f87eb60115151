// Package ari is earpiece's client for the Asterisk REST Interface (ARI):
// typed REST calls for the channels, bridges, endpoints, applications,
// playbacks and recordings resources, and one ordered, bounded stream of
// typed Stasis events read from the events WebSocket, with reconnection and
// the connection's state changes delivered in the same stream.
//
// Paths, parameters, models and events follow Asterisk's own Swagger
// description (rest-api/api-docs/*.json of Asterisk 22); the event structs in
// events_gen.go are generated from its events.json. Nothing here reads the
// environment or logs credentials: configuration comes in a Config value and
// the ARI user and password travel only in the HTTP Basic Authorization
// header.
package ari

//go:generate go run ./internal/gen -api ../../shared/asterisk-ari-api -out events_gen.go
