package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

func outboxEntry(tenant, id, ep string) store.OutboxEntry {
	return store.OutboxEntry{
		Delivery: store.Delivery{ID: id, Tenant: tenant, URL: "https://crm.example/hook", Type: "call.started", Status: store.DeliveryPending},
		Endpoint: ep,
		Body:     []byte(`{"type":"call.started"}`),
	}
}

func record(t *testing.T, e *env, tenant, id string) store.Delivery {
	t.Helper()
	ds, err := e.st.Deliveries(ctx(t), tenant, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no record of %s in %+v", id, ds)
	return store.Delivery{}
}

func claimIDs(cs []store.OutboxClaim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Delivery.ID)
	}
	return out
}

// An entry's life: added (and recorded pending), claimed once at a time, retried when due,
// settled delivered (removed, recorded).
func TestOutboxLifecycle(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if err := e.st.AddOutbox(c, outboxEntry("acme", "msg_1", "ep1"), 0); err != nil {
		t.Fatal(err)
	}
	// A retried add changes nothing.
	dup := outboxEntry("acme", "msg_1", "ep1")
	dup.Body = []byte("other")
	if err := e.st.AddOutbox(c, dup, 0); err != nil {
		t.Fatal(err)
	}
	if r := record(t, e, "acme", "msg_1"); r.Status != store.DeliveryPending {
		t.Errorf("record after add: %+v", r)
	}
	if ts, err := e.st.OutboxTenants(c); err != nil || !slices.Equal(ts, []string{"acme"}) {
		t.Errorf("OutboxTenants = %v, %v", ts, err)
	}
	if eps, err := e.st.OutboxEndpoints(c, "acme"); err != nil || !slices.Equal(eps, []string{"ep1"}) {
		t.Errorf("OutboxEndpoints = %v, %v", eps, err)
	}
	// Another endpoint's due set is not this one's.
	if cs, next, err := e.st.ClaimOutbox(c, "acme", "ep2", 10, time.Minute, "tok-x"); err != nil || len(cs) != 0 || next != -1 {
		t.Errorf("claim of ep2 = %v, %v, %v", cs, next, err)
	}

	cs, _, err := e.st.ClaimOutbox(c, "acme", "ep1", 10, time.Minute, "tok-a")
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim = %+v, %v", cs, err)
	}
	cl := cs[0]
	if cl.Token != "tok-a" || string(cl.Body) != `{"type":"call.started"}` || cl.Delivery.ID != "msg_1" || cl.Endpoint != "ep1" || cl.Age < 0 || cl.Age > 5*time.Second {
		t.Errorf("claim = %+v", cl)
	}
	// Claimed: nobody else gets it until the lease ends.
	cs, next, err := e.st.ClaimOutbox(c, "acme", "ep1", 10, time.Minute, "tok-b")
	if err != nil || len(cs) != 0 || next < 50*time.Second || next > time.Minute {
		t.Errorf("second claim = %+v, next %v, %v", cs, next, err)
	}

	// A failed attempt: retry in 150 ms.
	rec := cl.Delivery
	rec.Status, rec.Attempts, rec.LastStatus, rec.LastError = store.DeliveryRetrying, 1, 500, "HTTP 500"
	if err := e.st.SettleOutbox(c, cl, rec, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r := record(t, e, "acme", "msg_1"); r.Status != store.DeliveryRetrying || r.Attempts != 1 {
		t.Errorf("record after a failed attempt: %+v", r)
	}
	// Settled: the old claim is no longer anything.
	if err := e.st.SettleOutbox(c, cl, rec, 0); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("settling twice: %v", err)
	}
	cs, next, err = e.st.ClaimOutbox(c, "acme", "ep1", 10, time.Minute, "tok-b")
	if err != nil || len(cs) != 0 || next <= 0 || next > 150*time.Millisecond {
		t.Errorf("claim before due = %+v, next %v, %v", cs, next, err)
	}
	time.Sleep(next + 10*time.Millisecond)
	cs, _, err = e.st.ClaimOutbox(c, "acme", "ep1", 10, time.Minute, "tok-b")
	if err != nil || len(cs) != 1 || cs[0].Delivery.Attempts != 1 || cs[0].Delivery.Status != store.DeliveryRetrying {
		t.Fatalf("claim when due = %+v, %v", cs, err)
	}
	rec = cs[0].Delivery
	rec.Status, rec.Attempts, rec.LastStatus, rec.LastError = store.DeliveryDelivered, 2, 204, ""
	if err := e.st.SettleOutbox(c, cs[0], rec, 0); err != nil {
		t.Fatal(err)
	}
	if r := record(t, e, "acme", "msg_1"); r.Status != store.DeliveryDelivered || r.Attempts != 2 {
		t.Errorf("record after delivery: %+v", r)
	}
	// Nothing left but the tenants index.
	if ks := keys(t, e.rdb); !slices.Equal(ks, []string{
		store.Prefix + "deliveries:{acme}", store.Prefix + "deliveries:{acme}:order", store.Prefix + "outbox-tenants",
	}) {
		t.Errorf("keys left: %v", ks)
	}
	// Delivered: a retried add of it does not bring it back.
	if err := e.st.AddOutbox(c, outboxEntry("acme", "msg_1", "ep1"), 0); err != nil {
		t.Fatal(err)
	}
	if st, err := e.st.OutboxStats(c); err != nil || st.Depth != 0 {
		t.Errorf("stats after re-adding a delivered one: %+v, %v", st, err)
	}
}

// A claim whose lease ran out is anybody's: the late claimant can no longer settle it.
func TestOutboxClaimExpires(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for i := range 3 {
		if err := e.st.AddOutbox(c, outboxEntry("acme", fmt.Sprintf("msg_%d", i), "ep"), 0); err != nil {
			t.Fatal(err)
		}
	}
	a, _, err := e.st.ClaimOutbox(c, "acme", "ep", 2, 100*time.Millisecond, "tok-a")
	if err != nil || !slices.Equal(claimIDs(a), []string{"msg_0", "msg_1"}) {
		t.Fatalf("claim a = %v, %v", claimIDs(a), err)
	}
	b, _, err := e.st.ClaimOutbox(c, "acme", "ep", 10, 100*time.Millisecond, "tok-b")
	if err != nil || !slices.Equal(claimIDs(b), []string{"msg_2"}) {
		t.Fatalf("claim b = %v, %v", claimIDs(b), err)
	}
	// Released: due again at once.
	if err := e.st.ReleaseOutbox(c, b[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	b, _, err = e.st.ClaimOutbox(c, "acme", "ep", 10, time.Minute, "tok-b")
	if err != nil || len(b) != 3 {
		t.Fatalf("claim after a's lease = %v, %v", claimIDs(b), err)
	}
	rec := a[0].Delivery
	rec.Status = store.DeliveryDelivered
	if err := e.st.SettleOutbox(c, a[0], rec, 0); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("a settles after its lease: %v", err)
	}
	if err := e.st.ReleaseOutbox(c, a[1]); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("a releases after its lease: %v", err)
	}
	if r := record(t, e, "acme", "msg_0"); r.Status != store.DeliveryPending {
		t.Errorf("a wrote the record: %+v", r)
	}
	for _, cl := range b {
		rec := cl.Delivery
		rec.Status = store.DeliveryFailed
		if err := e.st.SettleOutbox(c, cl, rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Settled by b: a's late word changes nothing.
	rec = a[0].Delivery
	rec.Status = store.DeliveryRetrying
	if err := e.st.SettleOutbox(c, a[0], rec, time.Second); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("a settles what b settled: %v", err)
	}
	if r := record(t, e, "acme", "msg_0"); r.Status != store.DeliveryFailed {
		t.Errorf("record = %+v", r)
	}
	if st, err := e.st.OutboxStats(c); err != nil || st.Depth != 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}
}

// Redis lost the outbox (a restart without persistence) while an attempt was out: its outcome
// is recorded all the same, and a retry puts the entry back.
func TestOutboxLostByRedis(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for _, id := range []string{"msg_ok", "msg_retry"} {
		if err := e.st.AddOutbox(c, outboxEntry("acme", id, "ep"), 0); err != nil {
			t.Fatal(err)
		}
	}
	cs, _, err := e.st.ClaimOutbox(c, "acme", "ep", 10, time.Minute, "tok")
	if err != nil || len(cs) != 2 {
		t.Fatalf("claim = %v, %v", claimIDs(cs), err)
	}
	if err := e.rdb.FlushDB(c).Err(); err != nil {
		t.Fatal(err)
	}
	ok := cs[0].Delivery
	ok.Status, ok.Attempts = store.DeliveryDelivered, 1
	if err := e.st.SettleOutbox(c, cs[0], ok, 0); err != nil {
		t.Fatal(err)
	}
	retry := cs[1].Delivery
	retry.Status, retry.Attempts = store.DeliveryRetrying, 1
	if err := e.st.SettleOutbox(c, cs[1], retry, 0); err != nil {
		t.Fatal(err)
	}
	if r := record(t, e, "acme", "msg_ok"); r.Status != store.DeliveryDelivered {
		t.Errorf("msg_ok: %+v", r)
	}
	if r := record(t, e, "acme", "msg_retry"); r.Status != store.DeliveryRetrying {
		t.Errorf("msg_retry: %+v", r)
	}
	if ts, err := e.st.OutboxTenants(c); err != nil || !slices.Equal(ts, []string{"acme"}) {
		t.Errorf("tenants index = %v, %v", ts, err)
	}
	again, _, err := e.st.ClaimOutbox(c, "acme", "ep", 10, time.Minute, "tok2")
	if err != nil || !slices.Equal(claimIDs(again), []string{"msg_retry"}) || again[0].Delivery.Attempts != 1 {
		t.Fatalf("claim after the loss = %+v, %v", again, err)
	}
}

func TestOutboxFullAndInvalid(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for i := range 2 {
		if err := e.st.AddOutbox(c, outboxEntry("acme", fmt.Sprintf("msg_%d", i), "ep"), 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.AddOutbox(c, outboxEntry("acme", "msg_2", "ep"), 2); !errors.Is(err, store.ErrOutboxFull) {
		t.Errorf("third add = %v, want ErrOutboxFull", err)
	}
	// Another endpoint has its own bound.
	if err := e.st.AddOutbox(c, outboxEntry("acme", "msg_3", "other"), 2); err != nil {
		t.Error(err)
	}
	for _, bad := range []store.OutboxEntry{
		outboxEntry("", "msg", "ep"), outboxEntry("a:b", "msg", "ep"), outboxEntry("acme", "", "ep"), outboxEntry("acme", "msg", ""),
	} {
		if err := e.st.AddOutbox(c, bad, 0); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddOutbox(%+v) = %v", bad, err)
		}
	}
	if _, _, err := e.st.ClaimOutbox(c, "acme", "ep", 1, time.Minute, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("claim without a token: %v", err)
	}
}

func TestOutboxStats(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if st, err := e.st.OutboxStats(c); err != nil || st != (store.OutboxStats{}) {
		t.Errorf("empty: %+v, %v", st, err)
	}
	if err := e.st.AddOutbox(c, outboxEntry("acme", "msg_1", "ep"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	for _, id := range []string{"msg_2", "msg_3"} {
		if err := e.st.AddOutbox(c, outboxEntry("globex", id, "ep"), 0); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.st.OutboxStats(c)
	if err != nil || st.Depth != 3 || st.Oldest < 50*time.Millisecond || st.Oldest > 5*time.Second {
		t.Errorf("stats = %+v, %v", st, err)
	}
	// The outbox and the records share the tenant's hash tag (one script writes both).
	for _, k := range []string{store.OutboxKeyForTest("acme", ":items"), store.OutboxKeyForTest("acme", ":due:ep")} {
		if tag := k[len(store.Prefix+"outbox:"):]; tag[:6] != "{acme}" {
			t.Errorf("key %s: hash tag", k)
		}
	}
}
