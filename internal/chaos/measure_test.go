package chaos

import (
	"context"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
)

// TestMeasureOutageRefusal measures how long a supervisor waits to be refused while Redis is
// down, stopped and frozen (SIGSTOP), with earpiece's production timeouts (CallTimeout 5 s):
// "before" is earpiece without the store's health check and fail-fast hook and with the join's
// first write bounded by CallTimeout (as it was), "after" as main now wires it. By ear for a
// feature code (dial to the first frame of congestion), and for the API's join (App.Join, the
// core of POST /v1/supervisions, until its 503). Medians of 5, after the outage has begun (the
// health check has seen it), and the first attempt right as Redis goes (before it has).
// EARPIECE_MEASURE=1 runs it (a minute or two).
func TestMeasureOutageRefusal(t *testing.T) {
	if os.Getenv("EARPIECE_MEASURE") == "" {
		t.Skip("set EARPIECE_MEASURE=1")
	}
	for _, variant := range []string{"before", "after"} {
		for _, frozen := range []bool{false, true} {
			kind := map[bool]string{false: "stopped", true: "frozen"}[frozen]
			t.Run(variant+"/"+kind, func(t *testing.T) {
				h := newHarnessWith(t, Scenario{}, func(c *app.Config) {
					c.CallTimeout = 5 * time.Second // production's default
					c.RefusalTone = 300 * time.Millisecond
					if variant == "before" {
						c.StoreHealth = nil
						c.JoinStoreTimeout = c.CallTimeout
					}
				})
				h.R.Connect(h.Customer, h.Agent, "744")
				first := func() time.Duration { // right as Redis goes: the health check has not seen it yet
					if frozen {
						h.R.Redis.Pause()
					} else {
						h.R.Redis.Stop()
					}
					start := time.Now()
					sup, _ := h.R.Dial(h.Sup, "*90744")
					heard := h.R.Hears(sup, e2etest.ToneRefusalLow, "refused supervisor")
					h.R.AwaitEnded(sup, 15*time.Second, "refused supervisor")
					return heard.Sub(start)
				}()
				if variant == "after" {
					e2etest.WaitFor(t, 5*time.Second, "Redis seen down", func() bool { return !h.Health.Up() })
				}
				var phone, api []time.Duration
				for range 5 {
					start := time.Now()
					sup, _ := h.R.Dial(h.Sup, "*90744")
					heard := h.R.Hears(sup, e2etest.ToneRefusalLow, "refused supervisor")
					phone = append(phone, heard.Sub(start))
					h.R.AwaitEnded(sup, 15*time.Second, "refused supervisor")
				}
				for range 5 {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					start := time.Now()
					_, err := h.App.Join(ctx, app.Principal{Tenant: tenant, Role: config.RoleAdmin, KeyName: "crm"},
						app.JoinRequest{Agent: "744", Supervisor: "700", Mode: dialplan.Spy})
					api = append(api, time.Since(start))
					cancel()
					if err == nil {
						t.Fatal("API join succeeded with Redis down")
					}
				}
				t.Logf("%s, Redis %s: feature code refused by ear after %v (median of 5; first, as Redis went: %v); API join refused after %v (median of 5)",
					variant, kind, median(phone), first.Round(time.Millisecond), median(api))
				if frozen {
					h.R.Redis.Resume()
				} else {
					h.R.Redis.Restart()
				}
				e2etest.WaitFor(t, 10*time.Second, "the journal written", func() bool { return h.App.Journal().Len() == 0 })
			})
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}
