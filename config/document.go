package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	"gopkg.in/yaml.v3"
)

// The directory document: the tenants part of the configuration, as earpiece keeps it in Redis
// at run time and as `earpiece config export` prints it. It is the configuration file's own
// YAML (a document with only "tenants:"), so an export can be committed, edited and imported
// back; importing an export changes nothing.
//
// Secrets given by environment variable (secret_env, signing_secret_env) stay variable names in
// the document: each instance resolves them from its own environment when it loads the
// directory, so they never reach Redis. A secret written in the file or set through the API is
// kept as it is (the API needs it to sign).

// document is the YAML shape of the directory document.
type document struct {
	Tenants []Tenant `yaml:"tenants"`
}

// EncodeDirectory returns the directory document of tenants: canonical YAML, with the secrets
// that came from the environment left out (their variable names are kept).
func EncodeDirectory(tenants []Tenant) ([]byte, error) {
	doc := document{Tenants: make([]Tenant, len(tenants))}
	for i, t := range tenants {
		t = cloneTenant(t)
		t.Webhooks = slices.Clone(t.Webhooks)
		for j := range t.Webhooks {
			if t.Webhooks[j].SecretEnv != "" {
				t.Webhooks[j].Secret = ""
			}
		}
		for j := range t.APIKeys {
			if t.APIKeys[j].SigningSecretEnv != "" {
				t.APIKeys[j].SigningSecret = ""
			}
		}
		doc.Tenants[i] = t
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding directory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding directory: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeDirectory reads a directory document strictly (an unknown field is an error) and
// applies the tenants' defaults. It does not validate: see WithTenants.
func DecodeDirectory(doc []byte) ([]Tenant, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	var d document
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("decoding directory: empty document")
		}
		return nil, fmt.Errorf("decoding directory: %w", err)
	}
	c := Config{Tenants: d.Tenants}
	c.applyTenantDefaults()
	return c.Tenants, nil
}

// DirectoryHash is the SHA-256 (hex) of the directory document of tenants: what earpiece
// records about the file it imported, to tell an edited file from one applied before.
func DirectoryHash(tenants []Tenant) (string, error) {
	doc, err := EncodeDirectory(tenants)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:]), nil
}

// WithTenants returns a copy of c (the services part: ARI, Redis, HTTP, operator keys) with
// tenants in place of its own, the environment's secrets resolved through lookup, validated as
// a whole (the rules check-config applies; every problem names its field).
func (c *Config) WithTenants(tenants []Tenant, lookup func(string) (string, bool)) (*Config, error) {
	out := *c
	out.Tenants = make([]Tenant, len(tenants))
	for i, t := range tenants {
		t = cloneTenant(t)
		t.Webhooks = slices.Clone(t.Webhooks)
		out.Tenants[i] = t
	}
	out.applyTenantDefaults()
	if lookup != nil {
		out.applyTenantEnv(lookup)
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}
