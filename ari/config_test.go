package ari

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	if err := testConfig("http://127.0.0.1:8088/ari").Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := testConfig("https://pbx.example:8089/ari/").Validate(); err != nil {
		t.Fatalf("https config: %v", err)
	}

	// Every problem is reported at once.
	bad := Config{
		BaseURL:        "ftp://127.0.0.1/ari?x=1",
		RequestTimeout: -time.Second,
		MaxConns:       -1,
		EventBuffer:    -1,
		ReconnectMin:   time.Minute,
		ReconnectMax:   time.Second,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"scheme", "query", "User", "Password", "App", "RequestTimeout", "MaxConns", "EventBuffer", "ReconnectMin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	if _, err := New(bad); err == nil {
		t.Error("New accepted an invalid config")
	}

	for _, base := range []string{"", "127.0.0.1:8088", "http://", "http://ari:pw-in-url@127.0.0.1:8088/ari"} {
		cfg := testConfig(base)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("BaseURL %q accepted", base)
		} else if strings.Contains(err.Error(), "pw-in-url") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := New(testConfig("http://127.0.0.1:8088/ari/"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.cfg
	if got.RequestTimeout != 10*time.Second || got.MaxConns != 32 || got.EventBuffer != 1024 ||
		got.PingInterval != 5*time.Second || got.ReconnectMin != 100*time.Millisecond ||
		got.ReconnectMax != 10*time.Second || got.ReplacedBackoff != 30*time.Second || got.OverflowWait != time.Second {
		t.Errorf("defaults: %+v", got)
	}
	if c.base != "http://127.0.0.1:8088/ari" {
		t.Errorf("base %q", c.base)
	}
	if c.wsURL != "ws://127.0.0.1:8088/ari/events?app=earpiece&subscribeAll=false" {
		t.Errorf("wsURL %q", c.wsURL)
	}
	c2, _ := New(testConfig("https://pbx.example/ari"))
	if c2.wsURL != "wss://pbx.example/ari/events?app=earpiece&subscribeAll=false" {
		t.Errorf("wsURL %q", c2.wsURL)
	}
}

// The password never shows up in any way a Config is printed or logged.
func TestConfigRedacts(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:8088/ari")
	var logged bytes.Buffer
	log := zerolog.New(&logged)
	log.Info().Object("ari", cfg).Msg("config")
	asJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inURL := testConfig("http://u:" + testPassword + "@127.0.0.1/ari")
	for _, s := range []string{
		cfg.String(),
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%+v", struct{ ARI Config }{cfg}),
		logged.String(),
		string(asJSON),
		inURL.String(),
	} {
		if strings.Contains(s, testPassword) {
			t.Errorf("password in %q", s)
		}
	}
	if !strings.Contains(logged.String(), `"password":"[redacted]"`) || !strings.Contains(logged.String(), `"user":"earpiece"`) {
		t.Errorf("log: %s", logged.String())
	}
}

func TestConfigValidateJoins(t *testing.T) {
	err := Config{}.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 4 {
		t.Errorf("want 4 joined errors (BaseURL, User, Password, App), got %q", err)
	}
}
