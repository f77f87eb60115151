package config

import (
	"crypto/sha256"
	"encoding/hex"
)

// Lookups by a key's SHA-256 rather than by the key itself: a dashboard session (package
// webhooks) keeps the hash of the API key it was opened with, never the key, and resolves it
// again on every request, so that a key removed from the configuration or given another role
// or extension takes its sessions with it at once.

// KeyByHash finds the tenant API key whose SHA-256 is sha (64 lower-case hex digits), as
// Authenticate finds it by the key itself.
func (d *Directory) KeyByHash(sha string) (*Tenant, *APIKey, bool) {
	sum, ok := decodeSHA256(sha)
	if !ok {
		return nil, nil, false
	}
	ref, ok := d.keys[sum]
	if !ok {
		return nil, nil, false
	}
	return &ref.t.t, ref.key, true
}

// OperatorKeyByHash finds the operator key whose SHA-256 is sha, as AuthenticateOperator finds
// it by the key itself.
func (d *Directory) OperatorKeyByHash(sha string) (*OperatorKey, bool) {
	sum, ok := decodeSHA256(sha)
	if !ok {
		return nil, false
	}
	k, ok := d.operators[sum]
	return k, ok
}

func decodeSHA256(sha string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	if len(sha) != 2*sha256.Size {
		return sum, false
	}
	n, err := hex.Decode(sum[:], []byte(sha))
	return sum, err == nil && n == sha256.Size
}
