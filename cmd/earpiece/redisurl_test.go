package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/internal/freeport"
	"github.com/earpiece/earpiece/store"
)

// TestParseRedisURL: every scheme of redis.url gives the client it names, with the hosts, the
// credentials where they belong, go-redis's options, and ctx deadlines honoured.
func TestParseRedisURL(t *testing.T) {
	t.Run("one server", func(t *testing.T) {
		tg, err := parseRedisURL("redis://:pw@10.0.0.1:6380/2?dial_timeout=3s")
		if err != nil {
			t.Fatal(err)
		}
		o := tg.single
		if o == nil || o.Addr != "10.0.0.1:6380" || o.DB != 2 || o.Password != "pw" || o.DialTimeout != 3*time.Second || !o.ContextTimeoutEnabled {
			t.Errorf("%+v", o)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		tg, err := parseRedisURL("redis-sentinel://app:pw@s1:26380,s2,[::1]:26381/3?master=mymaster&sentinel_password=spw&pool_size=7")
		if err != nil {
			t.Fatal(err)
		}
		o := tg.failover
		if o == nil {
			t.Fatalf("%+v", tg)
		}
		want := []string{"s1:26380", "s2:26379", "[::1]:26381"}
		if strings.Join(o.SentinelAddrs, " ") != strings.Join(want, " ") || o.MasterName != "mymaster" || o.DB != 3 ||
			o.Username != "app" || o.Password != "pw" || o.SentinelPassword != "spw" || o.PoolSize != 7 || !o.ContextTimeoutEnabled || o.TLSConfig != nil {
			t.Errorf("%+v", o)
		}
		if tg, err := parseRedisURL("rediss-sentinel://s1/0?master=m"); err != nil || tg.failover.TLSConfig == nil {
			t.Errorf("rediss-sentinel: %v", err)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		tg, err := parseRedisURL("redis-cluster://:pw@n1:7000,n2:7001,n3?read_timeout=1s")
		if err != nil {
			t.Fatal(err)
		}
		o := tg.cluster
		if o == nil || strings.Join(o.Addrs, " ") != "n1:7000 n2:7001 n3:6379" || o.Password != "pw" || o.ReadTimeout != time.Second || !o.ContextTimeoutEnabled {
			t.Errorf("%+v", o)
		}
		if tg, err := parseRedisURL("rediss-cluster://n1:7000"); err != nil || tg.cluster.TLSConfig == nil {
			t.Errorf("rediss-cluster: %v", err)
		}
	})
	for _, bad := range []string{
		"http://h:6379",                                 // scheme
		"redis-sentinel://:secret@s1,s2/0",              // no master
		"redis-cluster://:secret@n1,,n2",                // empty host
		"redis-cluster://:secret@n1:7000/3",             // a database
		"redis://:secret@h1:6379,h2:6379/0",             // several hosts for one server
		"redis-sentinel://:secret@s1/0?master=m&nope=1", // unknown option
	} {
		if _, err := parseRedisURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the message shows the password: %v", bad, err)
		}
	}
}

// redisProc is a redis-server (or Sentinel) this test started.
type redisProc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisProc runs redis-server with args in dir (its log redis.log there), waits for PING,
// and kills it when t ends.
func startRedisProc(t *testing.T, dir string, port int, args ...string) *redisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (scripts/test-deps.sh installs it)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &redisProc{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil {
				if len(b) > 8<<10 {
					b = b[len(b)-8<<10:]
				}
				t.Logf("%s log:\n%s", p.addr, b)
			}
		}
	})
	c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer c.Close()
	waitUntil(t, 10*time.Second, p.addr+" answering PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
	return p
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reservePorts(t *testing.T) *freeport.Block {
	t.Helper()
	b, err := freeport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b
}

// TestRedisClusterStore: on a real 3-primary Redis Cluster, reached through a redis-cluster://
// URL, every kind of write the store makes works: sessions and their indexes, claims, the
// chained audit trail (its once markers included), help requests, the directory, API keys,
// deliveries, event streams, idempotency records, nonces. Its multi-key changes (MULTI/EXEC,
// WATCH, Lua, MGET) would fail with CROSSSLOT if a hash tag were missing; the keys are spread
// over the three primaries.
func TestRedisClusterStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	ports := reservePorts(t)
	base := t.TempDir()
	var nodes []string
	for i := range 3 {
		port, bus := ports.Port(i), ports.Port(10+i)
		startRedisProc(t, filepath.Join(base, strconv.Itoa(i)), port,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus), "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
			"--logfile", "redis.log", "--daemonize", "no")
		nodes = append(nodes, "127.0.0.1:"+strconv.Itoa(port))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (scripts/test-deps.sh installs redis-tools)")
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, nodes...), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n})
		waitUntil(t, 10*time.Second, n+" cluster_state:ok", func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
	}

	calls, edge, err := newRedisClients("redis-cluster://" + nodes[0] + "," + nodes[1] + "?dial_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	defer calls.Close()
	defer edge.Close()
	if _, ok := calls.(*redis.ClusterClient); !ok {
		t.Fatalf("client %T, want a cluster client", calls)
	}
	st := store.New(calls, store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runStoreOps(t, ctx, st)

	// The keys are spread over the primaries (sessions, help requests, audit trails of
	// different tenants and the claims hash to different slots).
	used := 0
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n})
		if k, _ := c.DBSize(ctx).Result(); k > 0 {
			used++
		}
		c.Close()
	}
	if used < 2 {
		t.Errorf("the store's keys are on %d of 3 primaries", used)
	}
	// The health check works through the cluster client, its hook included.
	h := store.NewHealth(calls, store.HealthOptions{})
	calls.AddHook(h)
	if err := h.Check(ctx); err != nil {
		t.Errorf("health check through the cluster: %v", err)
	}
	if err := st.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// runStoreOps makes every kind of write and read the store has and fails t on any error (a
// CROSSSLOT among them).
func runStoreOps(t *testing.T, ctx context.Context, st *store.Store) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	now := time.Now()
	for i, tenant := range []string{"acme", "globex", "initech"} {
		id := fmt.Sprintf("sup-cluster-%d", i)
		check("create session", st.CreateSession(ctx, store.Session{ID: id, Tenant: tenant, Supervisor: "700", Agent: "744",
			CallID: "call-" + id, State: store.StateJoining, SupervisorChannel: "sup-" + id, AgentChannel: "agent-" + id}))
		_, err := st.UpdateSession(ctx, id, func(s *store.Session) error {
			s.State, s.SnoopChannel = store.StateActive, "snoop-"+id
			s.SwitchMode("whisper", now)
			return nil
		})
		check("update session (new snoop index)", err)
		live, err := st.ListSessions(ctx, tenant)
		check("list sessions", err)
		if len(live) != 1 {
			t.Fatalf("%d live sessions of %s", len(live), tenant)
		}
		ok, err := st.Claim(ctx, "talker:agent-"+id, id, time.Minute)
		check("claim", err)
		if !ok {
			t.Fatal("claim not taken")
		}
		for _, e := range []store.AuditEntry{
			{Tenant: tenant, Actor: "700", Action: "join", Outcome: "allowed", Session: id, Once: id + ":join:allowed"},
			{Tenant: tenant, Actor: "700", Action: "mode_change", Outcome: "allowed", Session: id},
			{Tenant: tenant, Actor: "700", Action: "join", Outcome: "refused", Reason: "talker_busy"},
			{Tenant: tenant, Actor: "700", Action: "end", Outcome: "ok", Session: id, Once: id + ":end:ok"},
			{Tenant: tenant, Actor: "700", Action: "end", Outcome: "ok", Session: id, Once: id + ":end:ok"}, // a replay
		} {
			_, err := st.AppendAudit(ctx, e)
			check("append audit "+e.Action, err)
		}
		v, err := st.VerifyAudit(ctx, tenant)
		check("verify audit", err)
		if !v.OK || v.Entries != 4 {
			t.Fatalf("audit chain of %s: %+v (want 4 entries: the replayed end written once)", tenant, v)
		}
		_, _, err = st.AuditPage(ctx, tenant, store.AuditFilter{}, 10)
		check("audit page", err)
		check("release", st.Release(ctx, "talker:agent-"+id, id))
		_, err = st.EndSession(ctx, id, "call_ended", now)
		check("end session", err)

		h, err := st.CreateHelp(ctx, store.HelpRequest{ID: "help-" + id, Tenant: tenant, Agent: "744", CallID: "agent-" + id,
			RaisedBy: "744", Via: "api", CreatedAt: now})
		check("create help", err)
		_, err = st.AcceptHelp(ctx, tenant, h.ID, "700", now)
		check("accept help", err)
		_, err = st.SetHelpSession(ctx, tenant, h.ID, id)
		check("help session", err)
		_, err = st.ActiveHelp(ctx, tenant)
		check("active help", err)
		_, err = st.CloseHelp(ctx, tenant, h.ID, store.HelpReasonCallEnded, now)
		check("close help", err)
		_, err = st.ListHelp(ctx, tenant, now.Add(-time.Hour), now.Add(time.Hour))
		check("list help", err)

		check("create api key", st.CreateAPIKey(ctx, store.APIKey{Name: "crm", Tenant: tenant, Role: "admin",
			SHA256: fmt.Sprintf("%064x", i+1)}))
		_, err = st.APIKeys(ctx, tenant)
		check("api keys", err)
		_, err = st.RevokeAPIKey(ctx, tenant, "crm")
		check("revoke api key", err)
		check("save delivery", st.SaveDelivery(ctx, store.Delivery{ID: "msg_" + id, Tenant: tenant, URL: "https://crm.example/hook",
			Type: "supervision.ended", Status: store.DeliveryDelivered, CreatedAt: now, UpdatedAt: now}))
		_, err = st.Deliveries(ctx, tenant, 10)
		check("deliveries", err)
		_, err = st.PublishEvent(ctx, tenant, "supervision.ended", []byte(`{}`))
		check("publish event", err)
		_, err = st.ReadEvents(ctx, tenant, "0", 0, 10)
		check("read events", err)
		_, _, err = st.PutIfAbsent(ctx, tenant, "idem-"+id, []byte("v"), time.Minute)
		check("idempotency", err)
		_, err = st.ClaimNonce(ctx, tenant, "nonce-"+id, time.Minute)
		check("nonce", err)
		_, err = st.MarkOnce(ctx, "supervision.ended:"+id, time.Minute)
		check("mark once", err)
	}
	d, err := st.UpdateDirectory(ctx, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
		return store.DirectoryChange{Doc: []byte("tenants: []\n"), By: "test"}, nil
	})
	check("update directory", err)
	if rev, err := st.DirectoryRev(ctx); err != nil || rev != d.Rev {
		t.Fatalf("directory rev %d %v, want %d", rev, err, d.Rev)
	}
}

// TestRedisSentinelFailover: through a redis-sentinel:// URL the store writes to the primary
// that Sentinel names; a failover (SENTINEL FAILOVER) in the middle of a stream of audit
// appends moves the client to the new primary by itself, the writes go on, and the audit chain
// on the new primary verifies (no fork, no gap). Appends retried after an error carry their
// once marker, so a retry of a write that did land is not written twice. Nothing acknowledged
// before the failover began is lost; what the old primary acknowledged after its replica was
// promoted and before the client switched is (Redis replicates asynchronously): counted and
// reported.
func TestRedisSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis with Sentinels")
	}
	ports := reservePorts(t)
	base := t.TempDir()
	pPort, rPort, r2Port := ports.Port(0), ports.Port(1), ports.Port(2)
	server := func(name string, port int, extra ...string) *redisProc {
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--logfile", "redis.log", "--daemonize", "no"}, extra...)
		return startRedisProc(t, filepath.Join(base, name), port, args...)
	}
	primary := server("primary", pPort)
	// Two replicas: the first is the one Sentinel promotes (the lower priority), the second
	// follows the new primary after the failover.
	replica := server("replica", rPort, "--replicaof", "127.0.0.1", strconv.Itoa(pPort), "--replica-priority", "10")
	replica2 := server("replica2", r2Port, "--replicaof", "127.0.0.1", strconv.Itoa(pPort), "--replica-priority", "100")
	rc := redis.NewClient(&redis.Options{Addr: replica.addr})
	defer rc.Close()
	rc2 := redis.NewClient(&redis.Options{Addr: replica2.addr})
	defer rc2.Close()
	for _, c := range []*redis.Client{rc, rc2} {
		waitUntil(t, 10*time.Second, "the replicas in sync", func() bool {
			info, err := c.Info(context.Background(), "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		})
	}
	var sentinels []string
	for i := range 2 {
		port := ports.Port(10 + i)
		dir := filepath.Join(base, "sentinel"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\nlogfile redis.log\n"+
			"sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds mymaster 2000\n"+
			"sentinel failover-timeout mymaster 10000\n", port, pPort)), 0o600); err != nil {
			t.Fatal(err)
		}
		startRedisProc(t, dir, port, conf, "--sentinel")
		sentinels = append(sentinels, "127.0.0.1:"+strconv.Itoa(port))
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinels[0]})
	defer sc.Close()
	waitUntil(t, 15*time.Second, "Sentinel seeing the replicas", func() bool {
		rs, err := sc.Replicas(context.Background(), "mymaster").Result()
		return err == nil && len(rs) == 2
	})

	calls, edge, err := newRedisClients("redis-sentinel://" + strings.Join(sentinels, ",") + "/0?master=mymaster&dial_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer calls.Close()
	defer edge.Close()
	st := store.New(calls, store.Options{})

	// One writer appends audit entries (each retried until acknowledged, with its once
	// marker), and makes a session per entry.
	var (
		mu     sync.Mutex
		acked  []string    // once markers of acknowledged appends
		ackAt  []time.Time // when each was acknowledged
		errs   int
		stop   = make(chan struct{})
		writer sync.WaitGroup
	)
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			once := fmt.Sprintf("w-%d", i)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := st.AppendAudit(ctx, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "end", Outcome: "ok",
					Session: once, Once: once})
				if err == nil {
					err = st.CreateSession(ctx, store.Session{ID: "sup-" + once, Tenant: "acme", State: store.StateActive,
						SupervisorChannel: "ch-" + once})
					if errors.Is(err, store.ErrExists) { // the retry of a create that landed
						err = nil
					}
				}
				cancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, once)
					ackAt = append(ackAt, time.Now())
				} else {
					errs++
				}
				mu.Unlock()
				if err == nil {
					break
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitUntil(t, 5*time.Second, "writes before the failover", func() bool { return count() >= 50 })
	before := count()
	failoverAt := time.Now()
	if err := sc.Failover(context.Background(), "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	waitUntil(t, 15*time.Second, "Sentinel naming the replica primary", func() bool {
		addr, err := sc.GetMasterAddrByName(context.Background(), "mymaster").Result()
		return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(rPort)
	})
	switched := count()
	waitUntil(t, 10*time.Second, "writes after the failover", func() bool { return count() >= switched+50 })
	close(stop)
	writer.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The new primary (the former replica) has the chain, whole.
	newPrimary := store.New(rc, store.Options{})
	v, err := newPrimary.VerifyAudit(ctx, "acme")
	if err != nil || !v.OK {
		t.Fatalf("audit chain on the new primary: %+v %v", v.Broken, err)
	}
	es, err := newPrimary.Audit(ctx, "acme", time.Time{}, time.Time{}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int{}
	for _, e := range es {
		have[e.Session]++
	}
	mu.Lock()
	defer mu.Unlock()
	lost, dup, lostBefore := 0, 0, 0
	for i, o := range acked {
		switch have[o] {
		case 0:
			lost++
			if ackAt[i].Before(failoverAt) {
				lostBefore++
			}
		case 1:
		default:
			dup++
		}
	}
	t.Logf("sentinel failover: %d appends acknowledged (%d before the failover), %d failed attempts retried, "+
		"%d acknowledged by the old primary after the promotion and lost (Redis replicates asynchronously), "+
		"%d written twice; chain of %d entries verifies",
		len(acked), before, errs, lost, dup, v.Entries)
	if dup > 0 {
		t.Errorf("%d appends written twice", dup)
	}
	if lostBefore > 0 {
		t.Errorf("%d appends acknowledged before the failover began are lost", lostBefore)
	}

	// The old primary follows the new one once Sentinel reconfigures it.
	pc := redis.NewClient(&redis.Options{Addr: primary.addr})
	defer pc.Close()
	waitUntil(t, 15*time.Second, "the old primary replicating the new one", func() bool {
		info, err := pc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:slave")
	})
}

// TestDoctorClient: doctor's client follows the scheme and makes one attempt per command.
func TestDoctorClient(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://127.0.0.1:1/0":                   "*redis.Client",
		"redis-sentinel://127.0.0.1:1/0?master=m": "*redis.Client", // go-redis's failover client is a *Client
		"redis-cluster://127.0.0.1:1,127.0.0.1:2": "*redis.ClusterClient",
	} {
		c, err := newDoctorClient(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := fmt.Sprintf("%T", c); got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		if err := c.Ping(ctx).Err(); err == nil {
			t.Errorf("%s: PING answered by nothing", raw)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("%s: a failing PING took %v: retried", raw, d)
		}
		cancel()
		c.Close()
	}
	if _, err := newDoctorClient("redis-sentinel://:secret@s1/0"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("no master: %v", err)
	}
}
