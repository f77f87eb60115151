package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/store"
)

func TestClaimIsExclusiveAcrossClients(t *testing.T) {
	e := setup(t, store.Options{})
	// Two app instances: separate clients, separate stores, one Redis.
	a := e.st
	b := store.New(e.srv.Client(t), store.Options{})
	c := ctx(t)
	const key = "channel:1700000000.42"

	if ok, err := a.Claim(c, key, "node-a", time.Minute); err != nil || !ok {
		t.Fatalf("a.Claim = %v, %v; want true", ok, err)
	}
	if ok, err := b.Claim(c, key, "node-b", time.Minute); err != nil || ok {
		t.Fatalf("b.Claim of a's claim = %v, %v; want false", ok, err)
	}
	// Only the owner may release.
	if err := b.Release(c, key, "node-b"); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("b.Release = %v, want ErrNotOwner", err)
	}
	if owner := e.rdb.Get(c, store.Prefix+"claim:"+key).Val(); owner != "node-a" {
		t.Fatalf("claim owner after b's attempts = %q, want node-a", owner)
	}
	// Re-claiming one's own claim succeeds (a retry after a lost reply) and
	// resets its TTL.
	if ok, err := a.Claim(c, key, "node-a", time.Hour); err != nil || !ok {
		t.Fatalf("a.Claim again = %v, %v; want true", ok, err)
	}
	if ttl := e.rdb.PTTL(c, store.Prefix+"claim:"+key).Val(); ttl <= time.Minute {
		t.Errorf("TTL after claiming again for 1h = %v", ttl)
	}
	if err := a.Release(c, key, "node-a"); err != nil {
		t.Fatalf("a.Release: %v", err)
	}
	if err := a.Release(c, key, "node-a"); err != nil {
		t.Errorf("releasing a released claim: %v, want nil", err)
	}
	if ok, err := b.Claim(c, key, "node-b", time.Minute); err != nil || !ok {
		t.Fatalf("b.Claim after release = %v, %v; want true", ok, err)
	}
	if err := a.Release(c, key, "node-a"); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("a.Release of b's claim = %v, want ErrNotOwner", err)
	}

	for name, call := range map[string]func() error{
		"empty key":   func() error { _, err := a.Claim(c, "", "node-a", time.Minute); return err },
		"empty owner": func() error { _, err := a.Claim(c, key, "", time.Minute); return err },
		"zero ttl":    func() error { _, err := a.Claim(c, key, "node-a", 0); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error = %v, want ErrInvalid", name, err)
		}
	}
}

func TestClaimRaceHasOneWinner(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	const n = 16
	won := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		st := store.New(e.srv.Client(t), store.Options{})
		wg.Go(func() {
			ok, err := st.Claim(c, "call:race", fmt.Sprintf("node-%d", i), time.Minute)
			if err != nil {
				t.Errorf("Claim: %v", err)
			}
			won[i] = ok
		})
	}
	wg.Wait()
	winners := 0
	for _, w := range won {
		if w {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d instances won the claim, want 1", winners)
	}
}

func TestClaimLapses(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if ok, err := e.st.Claim(c, "k", "node-a", 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	// A crashed owner's claim lapses: node-b gets it within a deadline.
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := e.st.Claim(c, "k", "node-b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("claim with a 50ms TTL still held after 5s")
		}
		<-tick.C
	}
	if ok, err := e.st.Claim(c, "k", "node-a", time.Minute); err != nil || ok {
		t.Errorf("Claim by the lapsed owner = %v, %v; want false", ok, err)
	}
}

// serverMillis is Redis' clock, which stamps audit ids.
func serverMillis(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	now, err := rdb.Time(ctx(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMilli()
}

func idMillis(t *testing.T, id string) int64 {
	t.Helper()
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		t.Fatalf("stream id %q: %v", id, err)
	}
	return n
}

func TestAudit(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)

	var appended []store.AuditEntry
	for i, action := range []string{"join", "mode", "mode", "disconnect"} {
		en := store.AuditEntry{
			Tenant: "acme", Actor: "200", Action: action, Target: "744",
			Outcome: "ok", Session: "sup-1",
		}
		if i == 1 {
			en.Extra = map[string]string{"from": "spy", "to": "whisper"}
			en.Time = time.Date(2026, 3, 1, 9, 0, 1, 500, time.UTC)
		}
		id, err := e.st.AppendAudit(c, en)
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		en.ID = id
		if en.Time.IsZero() {
			en.Time = e.clock.Now()
		}
		appended = append(appended, en)
		// Give each entry its own millisecond of server time, so ranges can
		// split between them: wait (bounded) until Redis' clock moves on.
		for deadline := time.Now().Add(time.Second); serverMillis(t, e.rdb) <= idMillis(t, id); {
			if time.Now().After(deadline) {
				t.Fatal("Redis clock did not advance")
			}
		}
	}
	if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "globex", Actor: "300", Action: "join", Outcome: "refused", Reason: "not_allowed"}); err != nil {
		t.Fatal(err)
	}

	all, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		// The chain's fields are the store's; TestAuditChain* check them.
		if all[i].Seq != int64(i+1) || all[i].Hash == "" || (i > 0) != (all[i].PrevHash != "") {
			t.Errorf("entry %d: seq %d, prev %q, hash %q", i, all[i].Seq, all[i].PrevHash, all[i].Hash)
		}
		all[i].Seq, all[i].PrevHash, all[i].Hash = 0, "", ""
	}
	if !reflect.DeepEqual(all, appended) {
		t.Fatalf("Audit(all) =\n %+v\nwant\n %+v", all, appended)
	}

	ms := func(i int) time.Time { return time.UnixMilli(idMillis(t, appended[i].ID)) }
	for _, tc := range []struct {
		name     string
		from, to time.Time
		limit    int
		want     []int
	}{
		{"from second", ms(1), time.Time{}, 0, []int{1, 2, 3}},
		{"to third, exclusive", time.Time{}, ms(2), 0, []int{0, 1}},
		{"middle", ms(1), ms(3), 0, []int{1, 2}},
		{"limit", time.Time{}, time.Time{}, 2, []int{0, 1}},
		{"empty", ms(3).Add(time.Hour), time.Time{}, 0, nil},
	} {
		got, err := e.st.Audit(c, "acme", tc.from, tc.to, tc.limit)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var gotIDs, wantIDs []string
		for _, g := range got {
			gotIDs = append(gotIDs, g.ID)
		}
		for _, i := range tc.want {
			wantIDs = append(wantIDs, appended[i].ID)
		}
		if !reflect.DeepEqual(gotIDs, wantIDs) {
			t.Errorf("%s: ids %v, want %v", tc.name, gotIDs, wantIDs)
		}
	}

	g, err := e.st.Audit(c, "globex", time.Time{}, time.Time{}, 0)
	if err != nil || len(g) != 1 || g[0].Reason != "not_allowed" || g[0].Tenant != "globex" {
		t.Errorf("Audit(globex) = %+v, %v", g, err)
	}
	if _, err := e.st.AppendAudit(c, store.AuditEntry{Action: "join"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendAudit without tenant: %v, want ErrInvalid", err)
	}
	if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendAudit without action: %v, want ErrInvalid", err)
	}
}

// TestAuditRetentionByTime: however many entries are made, none younger than the retention
// goes (a count limit let anyone who can make entries flush the history); entries older than
// the retention, by the Redis server's clock, go at the next append.
func TestAuditRetentionByTime(t *testing.T) {
	// 8 s: time enough for 2000 appends (two round trips each, for the hash chain) under -race
	// on a machine whose two cores are busy with other work (3 s was not).
	const retention = 8 * time.Second
	e := setup(t, store.Options{AuditRetention: retention})
	c := ctx(t)
	first, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "join", Outcome: "allowed"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: fmt.Sprint(i), Action: "join", Outcome: "allowed"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 5000)
	if err != nil || len(all) != 2001 || all[0].ID != first {
		t.Fatalf("after 2000 more entries: %d entries, first %v (%v), want all 2001 from %s", len(all), all[0].ID, err, first)
	}
	// Wait until the Redis server's clock is past the retention of every entry so far.
	last, _ := strconv.ParseInt(strings.Split(all[len(all)-1].ID, "-")[0], 10, 64)
	deadline := time.Now().Add(retention + 5*time.Second)
	for {
		now, err := e.rdb.Time(c).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.UnixMilli() > last+retention.Milliseconds() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Redis clock does not move")
		}
		time.Sleep(10 * time.Millisecond)
	}
	newest, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "end", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if all, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 5000); err != nil || len(all) != 1 || all[0].ID != newest {
		t.Errorf("after the retention: %d entries (%v), want only %s", len(all), err, newest)
	}
}

// TestAuditRefusalsFolded: a flood of refusals of one actor for one reason makes a few entries
// per burst window, the last with a repeat count, so it can neither fill Redis nor bury other
// entries; a few refusals (a person mistyping) keep every detail; other actors, reasons and
// windows get entries of their own.
func TestAuditRefusalsFolded(t *testing.T) {
	e := setup(t, store.Options{AuditBurstEntries: 3})
	c := ctx(t)
	refuse := func(actor, reason, target string) string {
		t.Helper()
		id, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: actor, Action: "join", Target: target, Outcome: store.OutcomeRefused, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := range 1000 {
		id := refuse("key:crm", "not_allowed", fmt.Sprint(800+i))
		if (id != "") != (i < 3) {
			t.Fatalf("refusal %d made entry %q", i+1, id)
		}
	}
	refuse("key:crm", "no_active_call", "744") // another reason
	refuse("701", "not_allowed", "744")        // another actor
	e.clock.Advance(store.DefaultAuditBurstWindow)
	refuse("key:crm", "not_allowed", "745") // the next window
	refuse("key:crm", "not_allowed", "746")
	got, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		actor, reason, target string
		repeats               int64
	}
	var rows []row
	for _, a := range got {
		rows = append(rows, row{a.Actor, a.Reason, a.Target, a.Repeats})
	}
	want := []row{
		{"key:crm", "not_allowed", "800", 0},
		{"key:crm", "not_allowed", "801", 0},
		{"key:crm", "not_allowed", "802", 997},
		{"key:crm", "no_active_call", "744", 0},
		{"701", "not_allowed", "744", 0},
		{"key:crm", "not_allowed", "745", 0},
		{"key:crm", "not_allowed", "746", 0},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("entries = %+v\nwant %+v", rows, want)
	}
	// Allowed actions are never folded.
	for range 10 {
		if id, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "join", Outcome: "allowed"}); err != nil || id == "" {
			t.Fatalf("allowed join: %q, %v", id, err)
		}
	}
}

func TestPutIfAbsent(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	first := []byte(`{"id":"sup-1"}` + "\x00binary")
	existing, created, err := e.st.PutIfAbsent(c, "acme", "req-1", first, time.Hour)
	if err != nil || !created || existing != nil {
		t.Fatalf("first PutIfAbsent = %q, %v, %v", existing, created, err)
	}
	existing, created, err = e.st.PutIfAbsent(c, "acme", "req-1", []byte("second"), time.Hour)
	if err != nil || created || !bytes.Equal(existing, first) {
		t.Fatalf("second PutIfAbsent = %q, %v, %v; want the first value", existing, created, err)
	}
	// Tenants do not share keys.
	if _, created, err := e.st.PutIfAbsent(c, "globex", "req-1", []byte("x"), time.Hour); err != nil || !created {
		t.Errorf("other tenant, same key: created = %v, %v", created, err)
	}
	if ttl := e.rdb.TTL(c, store.Prefix+"idem:acme:req-1").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL = %v", ttl)
	}
	if _, _, err := e.st.PutIfAbsent(c, "ac:me", "k", nil, time.Hour); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("tenant with ':' = %v, want ErrInvalid", err)
	}
}
