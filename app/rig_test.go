package app

import (
	"os"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// TestMain stops the shared test Asterisk after the tests, then checks that nothing was left
// running (each rig also checks its own test).
func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

const (
	hzCustomer   = testphone.ToneCustomer
	hzAgent      = testphone.ToneAgent
	hzSupervisor = testphone.ToneSupervisor
)

// rig is an end-to-end rig (see e2etest) running this package's App as Stasis app "earpiece",
// with the directory of testdata/e2e.yaml.
type rig struct {
	*e2etest.Rig
	app *App
}

// rigOption changes the app's configuration or its directory's before the app starts (after, the
// app's goroutines read them).
type rigOption func(*Config, *config.Config)

// owned is what the app makes on Asterisk (e2etest.AssertClean).
var owned = e2etest.Owned{BridgeNamePrefix: BridgeNamePrefix, BridgeIDPrefix: bridgePrefix, ChannelIDPrefix: snoopPrefix}

func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	return startRig(t, e2etest.New(t, owned), "test", opts...)
}

// startRig runs the app, as instance, on r.
func startRig(t *testing.T, r *e2etest.Rig, instance string, opts ...rigOption) *rig {
	t.Helper()
	cfg := Config{
		AppName:     e2etest.AppName,
		Instance:    instance,
		RefusalTone: 700 * time.Millisecond,
		EndTone:     500 * time.Millisecond,
		CallTimeout: 2 * time.Second,
		Logger:      r.Log,
	}
	dcfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(&cfg, dcfg)
	}
	dir, err := config.NewDirectory(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, r.Client, r.Store, dir)
	r.Start(a)
	return &rig{Rig: r, app: a}
}

// For returns the rig reporting to t, a subtest of the rig's test.
func (r *rig) For(t *testing.T) *rig { return &rig{Rig: r.Rig.For(t), app: r.app} }
