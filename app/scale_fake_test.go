package app

import (
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// TestScaleFake measures what a supervised call costs the app and Redis at 10 and 1,000 live
// supervised sessions, on the fake ARI (so only earpiece's own costs count) and a real Redis:
//
//   - a join's cost with N sessions live, by feature code and through the API: its wall time and
//     the app's own time (wall minus the time in the fake ARI and in Redis; medians), the
//     allocations and bytes the whole process makes during it, its ARI calls and Redis commands.
//     Goal: the same at 10 and 1,000 (within 20 %); the ARI calls exactly the same
//     (TestFastJoinCostFlat checks that in make test).
//   - memory per live session: Go heap in use and goroutine stacks, after GC, divided by N
//     (the fake's own objects for a session — its supervisor channel, snoop and bridge — are
//     in it: an upper bound). Goal: 32 KiB.
//   - Redis per live session: MEMORY USAGE summed over the keys that appeared, and INFO
//     used_memory's growth, divided by N. Goal: 2 KiB.
//
// Each session is an agent's call bridged with a customer and a supervisor joined by dialing the
// spy code, as in production. It runs only when EARPIECE_SCALE_FAKE is set (make scale-fake);
// SCALE_FAKE_N ("10 1000") and SCALE_FAKE_JOINS (200) change the sizes and the joins measured.
func TestScaleFake(t *testing.T) {
	if os.Getenv("EARPIECE_SCALE_FAKE") == "" {
		t.Skip("EARPIECE_SCALE_FAKE not set (make scale-fake)")
	}
	sizes := []int{10, 1000}
	if v := os.Getenv("SCALE_FAKE_N"); v != "" {
		sizes = nil
		for f := range strings.FieldsSeq(v) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				t.Fatalf("SCALE_FAKE_N: %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	joins := 200
	if v := os.Getenv("SCALE_FAKE_JOINS"); v != "" {
		var err error
		if joins, err = strconv.Atoi(v); err != nil || joins < 1 {
			t.Fatalf("SCALE_FAKE_JOINS: %q", v)
		}
	}
	maxN := slices.Max(sizes)
	var rows []scaleRow
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) { rows = append(rows, measureScale(t, n, maxN, joins)) })
	}
	if len(rows) != len(sizes) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nearpiece on the fake ARI and a real Redis: what a supervised call costs earpiece (%d joins measured per size)\n", joins)
	fmt.Fprintf(&b, "\nper join, with N sessions live (medians; app = wall minus the time in the fake ARI and in Redis)\n")
	fmt.Fprintf(&b, "%-13s %7s %10s %10s %10s %10s %10s %10s\n", "join", "N", "wall_us", "app_us", "allocs", "alloc_KB", "ARI_calls", "redis_cmds")
	for _, kind := range []string{"feature code", "API"} {
		for _, r := range rows {
			c := r.feature
			if kind == "API" {
				c = r.api
			}
			fmt.Fprintf(&b, "%-13s %7d %10.0f %10.0f %10.0f %10.1f %10.1f %10.1f\n", kind, r.live, c.ns/1e3, c.appNs/1e3, c.allocs, c.bytes/1024, c.ari, c.redis)
		}
	}
	fmt.Fprintf(&b, "\nper live session (deltas over the N sessions / N; Go memory after GC, the fake's objects for the session included)\n")
	fmt.Fprintf(&b, "%7s %10s %10s %10s %12s %12s %12s %12s\n", "N", "heap_B", "stack_B", "goroutines", "redis_live_B", "redis_hist_B", "dataset_B", "used_mem_B")
	for _, r := range rows {
		fmt.Fprintf(&b, "%7d %10.0f %10.0f %10.2f %12.0f %12.0f %12.0f %12.0f\n", r.live, r.heapPerSession, r.stackPerSession,
			r.goroutinesPerSession, r.redisLivePerSession, r.redisHistoryPerSession, r.redisDatasetPerSession, r.redisUsedPerSession)
	}
	first, last := rows[0], rows[len(rows)-1]
	for _, kind := range []string{"feature code", "API"} {
		f, l := first.feature, last.feature
		if kind == "API" {
			f, l = first.api, last.api
		}
		fmt.Fprintf(&b, "\n%s join at N=%d vs N=%d: app time x%.2f (wall x%.2f), allocations x%.2f, ARI calls %.1f vs %.1f, Redis commands %.1f vs %.1f (goal: within 20 %%; ARI calls equal)",
			kind, last.live, first.live, l.appNs/f.appNs, l.ns/f.ns, l.allocs/f.allocs, l.ari, f.ari, l.redis, f.redis)
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "per live session at N=%d: %.1f KiB Go memory (goal <= 32 KiB); Redis %.0f B by MEMORY USAGE (%.0f B live state + %.0f B audit history), %.0f B dataset, %.0f B used_memory (goal <= 2048 B)\n",
		last.live, (last.heapPerSession+last.stackPerSession)/1024, last.redisKeyBytesPerSession, last.redisLivePerSession,
		last.redisHistoryPerSession, last.redisDatasetPerSession, last.redisUsedPerSession)
	fmt.Fprintf(&b, "Redis keys per session at N=%d: %s\n", last.live, last.redisKinds)
	fmt.Print(b.String())

	for _, c := range [][2]joinCost{{first.feature, last.feature}, {first.api, last.api}} {
		if c[0].ari != c[1].ari {
			t.Errorf("a join's ARI calls grow with the live sessions: %.1f at %d, %.1f at %d", c[0].ari, first.live, c[1].ari, last.live)
		}
	}
	if r := last.feature.allocs / first.feature.allocs; r > 1.2 {
		t.Errorf("a feature-code join's allocations grow with the live sessions: x%.2f", r)
	}
	if kib := (last.heapPerSession + last.stackPerSession) / 1024; kib > 32 {
		t.Errorf("%.1f KiB of Go memory per live session, goal 32", kib)
	}
	if b := last.redisKeyBytesPerSession; b > 2048 {
		t.Errorf("%.0f B of Redis (MEMORY USAGE) per live session, goal 2048", b)
	}
}

type scaleRow struct {
	live                            int
	feature, api                    joinCost
	heapPerSession, stackPerSession float64
	goroutinesPerSession            float64
	redisKeyBytesPerSession         float64
	redisLivePerSession             float64
	redisHistoryPerSession          float64
	redisDatasetPerSession          float64
	redisUsedPerSession             float64
	redisKinds                      string
}

func measureScale(t *testing.T, n, maxN, joins int) scaleRow {
	r := newCostRig(t, maxN+1)
	r.connect()
	row := scaleRow{live: n}
	rt := &redisTimer{}
	r.rdb.AddHook(rt)

	// The measured pair (maxN): its call stays up; its supervisor joins and leaves.
	probeAgent := r.f.Call("PJSIP/" + agentExt(maxN))
	r.eventually("the probe call indexed", func() bool { _, ok := r.app.callOf("acme", string(probeAgent), ""); return ok })

	// n calls, then n sessions on them.
	for i := range n {
		r.f.Call("PJSIP/" + agentExt(i))
	}
	r.eventually("the calls indexed", func() bool { return len(r.app.callsFor("acme")) == n+1 })
	m1, g1 := memNow()
	k1, _ := redisKeyBytes(t, r)
	u1, d1 := redisUsedMemory(t, r), redisDataset(t, r)
	for i := range n {
		r.join(i)
	}
	m2, g2 := memNow()
	k2, kinds := redisKeyBytes(t, r)
	u2, d2 := redisUsedMemory(t, r), redisDataset(t, r)
	row.heapPerSession = float64(int64(m2.HeapInuse)-int64(m1.HeapInuse)) / float64(n)
	row.stackPerSession = float64(int64(m2.StackInuse)-int64(m1.StackInuse)) / float64(n)
	row.goroutinesPerSession = float64(g2-g1) / float64(n)
	row.redisKeyBytesPerSession = float64(k2-k1) / float64(n)
	row.redisUsedPerSession = float64(u2-u1) / float64(n)
	row.redisDatasetPerSession = float64(d2-d1) / float64(n)
	var ks []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		if per := float64(kinds[k].bytes) / float64(n); strings.HasPrefix(k, "{sessions}") || k == "claim" {
			row.redisLivePerSession += per
		} else {
			row.redisHistoryPerSession += per
		}
		ks = append(ks, fmt.Sprintf("%s %.2f keys %.0f B", k, float64(kinds[k].n)/float64(n), float64(kinds[k].bytes)/float64(n)))
	}
	row.redisKinds = strings.Join(ks, "; ")
	if live := len(r.app.Live()); live != n {
		t.Fatalf("%d sessions live, want %d", live, n)
	}

	// The joins, each with n sessions live: by feature code, then through the API.
	r.f.mu.Lock()
	bridges, channels := len(r.f.bridges), len(r.f.channels)
	r.f.mu.Unlock()
	m := joinMeter{r: r, rt: rt, bridges: bridges, channels: channels}
	supEp, code := "PJSIP/"+supervisorExt(maxN), "*90"+agentExt(maxN)
	row.feature = m.measure(t, joins, func() ari.ChannelID { return r.f.Dial(supEp, "acme", code) })
	admin := Principal{Tenant: "acme", Role: config.RoleAdmin, KeyName: "crm"}
	row.api = m.measure(t, joins, func() ari.ChannelID {
		rec, err := r.app.Join(context.Background(), admin, JoinRequest{Agent: agentExt(maxN), Supervisor: supervisorExt(maxN), Mode: dialplan.Spy})
		if err != nil {
			t.Fatal(err)
		}
		leg := ari.ChannelID(rec.SupervisorChannel)
		r.f.AnswerPhone(leg, argAPI, rec.ID)
		return leg
	})
	return row
}

// joinCost is what one kind of join costs: medians of wall time, of the time outside the fake
// ARI, and of the time outside the fake and Redis (the app's own); means of the rest.
type joinCost struct {
	ns, ownNs, appNs          float64
	allocs, bytes, ari, redis float64
}

// joinMeter measures joins one at a time on a rig with its sessions up.
type joinMeter struct {
	r                 *costRig
	rt                *redisTimer
	bridges, channels int // on the fake with no measured session
}

// measure runs join (which returns the supervisor's channel) k times, each to its session's
// active state, then hangs the supervisor up and waits for the teardown before the next.
func (m joinMeter) measure(t *testing.T, k int, join func() ari.ChannelID) joinCost {
	r := m.r
	var ns, own, app []float64
	var c joinCost
	var ms runtime.MemStats
	for range k {
		before, fakeBefore, redisBefore, cmdsBefore := r.ari.counts(), r.ari.spent(), m.rt.total(), m.rt.commands()
		runtime.ReadMemStats(&ms)
		mallocs, alloc := ms.Mallocs, ms.TotalAlloc
		start := time.Now()
		sup := join()
		for r.routedState(sup) != "active" {
			if time.Since(start) > 10*time.Second {
				t.Fatal("the measured join did not complete")
			}
			time.Sleep(50 * time.Microsecond)
		}
		wall := time.Since(start)
		fake, red := r.ari.spent()-fakeBefore, m.rt.total()-redisBefore
		runtime.ReadMemStats(&ms)
		ns = append(ns, float64(wall.Nanoseconds()))
		own = append(own, float64((wall - fake).Nanoseconds()))
		app = append(app, float64((wall - fake - red).Nanoseconds()))
		c.allocs += float64(ms.Mallocs - mallocs)
		c.bytes += float64(ms.TotalAlloc - alloc)
		c.ari += float64(total(diffCounts(before, r.ari.counts())))
		c.redis += float64(m.rt.commands() - cmdsBefore)
		r.f.HangupFromPhone(sup)
		// Its teardown over (snoop hung up, bridge destroyed, record ended), so that the next
		// join is measured alone: the fake's own teardown work grows with the bridges it holds.
		r.eventually("the measured session torn down", func() bool {
			r.f.mu.Lock()
			nb, nc := len(r.f.bridges), len(r.f.channels)
			r.f.mu.Unlock()
			return r.routedState(sup) == "" && nb == m.bridges && nc == m.channels
		})
	}
	slices.Sort(ns)
	slices.Sort(own)
	slices.Sort(app)
	c.ns, c.ownNs, c.appNs = ns[len(ns)/2], own[len(own)/2], app[len(app)/2]
	n := float64(k)
	c.allocs, c.bytes, c.ari, c.redis = c.allocs/n, c.bytes/n, c.ari/n, c.redis/n
	return c
}

// routedState is the state of the session routed by supervisor channel sup ("" for none): one
// map lookup, so that waiting for it costs the same whatever the number of sessions.
func (r *costRig) routedState(sup ari.ChannelID) string {
	a := r.app
	a.mu.Lock()
	s := a.routes[sup]
	a.mu.Unlock()
	if s == nil {
		return ""
	}
	if v := s.view.Load(); v != nil {
		return v.state
	}
	return ""
}

func memNow() (runtime.MemStats, int) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms, runtime.NumGoroutine()
}

type keyKind struct {
	n     int
	bytes int64
}

// redisKeyBytes sums MEMORY USAGE over every key, and by kind (the key without its ids).
func redisKeyBytes(t *testing.T, r *costRig) (int64, map[string]keyKind) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := r.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]keyKind{}
	var sum int64
	for chunk := range slices.Chunk(keys, 500) {
		p := r.rdb.Pipeline()
		for _, k := range chunk {
			p.MemoryUsage(ctx, k)
		}
		cmds, err := p.Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			b, _ := c.(interface{ Val() int64 })
			v := b.Val()
			sum += v
			kk := kinds[keyKindOf(chunk[i])]
			kk.n++
			kk.bytes += v
			kinds[keyKindOf(chunk[i])] = kk
		}
	}
	return sum, kinds
}

// keyKindOf names a key without its ids: earpiece:v1:{sessions}:session:sup-… -> {sessions}:session.
func keyKindOf(key string) string {
	rest := strings.TrimPrefix(key, store.Prefix)
	parts := strings.SplitN(rest, ":", 3)
	if strings.HasPrefix(parts[0], "{") && len(parts) > 1 {
		return parts[0] + ":" + parts[1]
	}
	return parts[0]
}

// redisDataset is MEMORY STATS' dataset.bytes: the keys and values, without Redis's own
// overhead (hash tables, clients, scripts).
func redisDataset(t *testing.T, r *costRig) int64 {
	t.Helper()
	v, err := r.rdb.Do(context.Background(), "MEMORY", "STATS").Result()
	if err != nil {
		t.Fatal(err)
	}
	switch m := v.(type) {
	case map[any]any:
		if n, ok := m["dataset.bytes"].(int64); ok {
			return n
		}
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] == "dataset.bytes" {
				if n, ok := m[i+1].(int64); ok {
					return n
				}
			}
		}
	}
	t.Fatalf("no dataset.bytes in MEMORY STATS: %v", v)
	return 0
}

func redisUsedMemory(t *testing.T, r *costRig) int64 {
	t.Helper()
	info, err := r.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// redisTimer adds up the time the app waits on Redis (commands and pipelines).
type redisTimer struct {
	mu    sync.Mutex
	spent time.Duration
	n     int // commands
}

func (h *redisTimer) add(d time.Duration, n int) {
	h.mu.Lock()
	h.spent += d
	h.n += n
	h.mu.Unlock()
}

func (h *redisTimer) commands() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *redisTimer) total() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.spent
}

func (h *redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.add(time.Since(start), 1)
		return err
	}
}

func (h *redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.add(time.Since(start), len(cmds))
		return err
	}
}
