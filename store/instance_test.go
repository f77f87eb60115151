package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// TestLease: one holder at a time; every acquisition a new epoch; the holder renews, another
// instance waits until the lease lapses, then takes it under a new epoch; the old holder's
// renewal then reports it lost; a restart under the holder's own name takes it over at once;
// release lets a standby take it at once; nodes have leases of their own.
func TestLease(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	const ttl = 300 * time.Millisecond

	a, ok, err := e.st.AcquireLease(c, "earpiece", "a", ttl, true)
	if err != nil || !ok || a.Epoch != 1 || a.Instance != "a" {
		t.Fatalf("first acquire: %+v %v %v", a, ok, err)
	}
	holder, ok, err := e.st.AcquireLease(c, "earpiece", "b", ttl, true)
	if err != nil || ok || holder.Instance != "a" || holder.Epoch != 1 {
		t.Fatalf("second acquire while held: %+v %v %v", holder, ok, err)
	}
	// The holder renews past the TTL: still held.
	for range 4 {
		time.Sleep(ttl / 3)
		if held, err := e.st.RenewLease(c, a, ttl); err != nil || !held {
			t.Fatalf("renew: %v %v", held, err)
		}
	}
	if _, ok, _ := e.st.AcquireLease(c, "earpiece", "b", ttl, true); ok {
		t.Fatal("b took a renewed lease")
	}
	// Another node's lease is its own.
	other, ok, err := e.st.AcquireLease(c, "earpiece-b", "x", ttl, true)
	if err != nil || !ok || other.Epoch != 1 {
		t.Fatalf("other node: %+v %v %v", other, ok, err)
	}

	// a stops renewing (crash): b gets the lease once it lapses, under epoch 2.
	var b store.Lease
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, ok, err = e.st.AcquireLease(c, "earpiece", "b", ttl, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never got the lapsed lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Epoch != 2 || b.Instance != "b" {
		t.Fatalf("b's lease: %+v", b)
	}
	// The old holder comes back: its renewal is refused, it is told it lost.
	if held, err := e.st.RenewLease(c, a, ttl); err != nil || held {
		t.Fatalf("stale renew: held %v err %v", held, err)
	}
	if got, err := e.st.LeaseHolder(c, "earpiece"); err != nil || got.Owner() != b.Owner() {
		t.Fatalf("holder after the stale renewal: %+v %v", got, err)
	}
	// The stale holder cannot release it either.
	if err := e.st.ReleaseLease(c, a); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.LeaseHolder(c, "earpiece"); err != nil || got.Owner() != b.Owner() {
		t.Fatalf("holder after a stale release: %+v %v", got, err)
	}

	// b restarts under its own name: it takes its lease over at once, under a new epoch (the
	// previous b is another owner now); without sameName it would wait.
	if _, ok, _ := e.st.AcquireLease(c, "earpiece", "b", ttl, false); ok {
		t.Fatal("acquired without sameName while held")
	}
	b2, ok, err := e.st.AcquireLease(c, "earpiece", "b", ttl, true)
	if err != nil || !ok || b2.Epoch != 3 {
		t.Fatalf("same-name takeover: %+v %v %v", b2, ok, err)
	}
	if held, _ := e.st.RenewLease(c, b, ttl); held {
		t.Error("the previous incarnation of b renewed after the restart")
	}

	// Graceful release: a standby takes it at once.
	if err := e.st.ReleaseLease(c, b2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.LeaseHolder(c, "earpiece"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("holder after release: %v", err)
	}
	c2, ok, err := e.st.AcquireLease(c, "earpiece", "c", ttl, true)
	if err != nil || !ok || c2.Epoch != 4 {
		t.Fatalf("standby after release: %+v %v %v", c2, ok, err)
	}
}

// TestLeaseLapsedUntaken: a lease that lapsed while nobody took it (Redis out of reach of
// everyone) is the holder's again at its next renewal; not once someone took it since, even if
// they released it.
func TestLeaseLapsedUntaken(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	const ttl = 100 * time.Millisecond
	a, _, err := e.st.AcquireLease(c, "n", "a", ttl, true)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ttl)
	if held, err := e.st.RenewLease(c, a, ttl); err != nil || !held {
		t.Fatalf("renewal of a lapsed, untaken lease: %v %v", held, err)
	}
	time.Sleep(2 * ttl)
	b, ok, err := e.st.AcquireLease(c, "n", "b", ttl, true)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := e.st.ReleaseLease(c, b); err != nil {
		t.Fatal(err)
	}
	if held, err := e.st.RenewLease(c, a, ttl); err != nil || held {
		t.Fatalf("renewal after another took and released it: %v %v", held, err)
	}
}

// TestLeaseOneWinner: instances racing for a free lease: exactly one gets it.
func TestLeaseOneWinner(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	var mu sync.Mutex
	winners := 0
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_, ok, err := e.st.AcquireLease(c, "n", "i"+string(rune('a'+i)), time.Second, true)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d winners", winners)
	}
}

// TestAdoptAndFence: a session is adopted once (compare-and-set on its owner); afterwards the old
// owner's updates and end are refused and change nothing, the new owner's go through, and the
// owner survives the new owner's updates.
func TestAdoptAndFence(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	s := session("acme", "700", "744")
	s.Instance, s.Epoch, s.Node = "a", 1, "earpiece"
	mustCreate(t, e, s)
	old, b, c3 := store.Owner{Instance: "a", Epoch: 1}, store.Owner{Instance: "b", Epoch: 2}, store.Owner{Instance: "c", Epoch: 3}

	// Two adopters race: one wins.
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i, to := range []store.Owner{b, c3} {
		wg.Go(func() { _, results[i] = e.st.AdoptSession(c, s.ID, old, to) })
	}
	wg.Wait()
	if (results[0] == nil) == (results[1] == nil) {
		t.Fatalf("adoption results: %v", results)
	}
	winner := b
	if results[0] != nil {
		winner = c3
	}
	for _, err := range results {
		if err != nil && !errors.Is(err, store.ErrNotOwner) {
			t.Errorf("losing adopter: %v, want ErrNotOwner", err)
		}
	}
	got, _ := e.st.GetSession(c, s.ID)
	if got.Owner() != winner || got.Mode != "spy" || got.State != store.StateActive {
		t.Fatalf("after adoption: %+v", got)
	}

	// The old owner comes back: refused, nothing written.
	if _, err := e.st.UpdateOwnedSession(c, s.ID, old, func(r *store.Session) error { r.Mode = "barge"; return nil }); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("stale update: %v", err)
	}
	if _, err := e.st.EndOwnedSession(c, s.ID, old, "api", time.Time{}); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("stale end: %v", err)
	}
	if _, err := e.st.AdoptSession(c, s.ID, old, old); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("stale re-adoption: %v", err)
	}
	got, _ = e.st.GetSession(c, s.ID)
	if got.Mode != "spy" || !got.Live() || got.Owner() != winner {
		t.Fatalf("the stale owner changed the session: %+v", got)
	}

	// The new owner's writes go through, and cannot change the owner.
	got, err := e.st.UpdateOwnedSession(c, s.ID, winner, func(r *store.Session) error {
		r.Mode, r.Instance, r.Epoch = "whisper", "x", 99
		return nil
	})
	if err != nil || got.Mode != "whisper" || got.Owner() != winner {
		t.Fatalf("owner's update: %+v %v", got, err)
	}
	got, err = e.st.EndOwnedSession(c, s.ID, winner, "api", time.Time{})
	if err != nil || got.State != store.StateEnded || got.EndReason != "api" {
		t.Fatalf("owner's end: %+v %v", got, err)
	}
	// Ended: adoption refused, a repeated end returns it unchanged (to anyone).
	if _, err := e.st.AdoptSession(c, s.ID, winner, old); !errors.Is(err, store.ErrEnded) {
		t.Errorf("adopting an ended session: %v", err)
	}
	if again, err := e.st.EndOwnedSession(c, s.ID, old, "other", time.Time{}); err != nil || again.EndReason != "api" {
		t.Errorf("ending an ended session: %+v %v", again, err)
	}
}

// TestCommands: commands queued for a node come out oldest first, only to that node; replies
// reach their waiter; nothing waits forever.
func TestCommands(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for _, p := range []string{"one", "two"} {
		if err := e.st.PushCommand(c, "earpiece", []byte(p), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.PushCommand(c, "earpiece-b", []byte("other"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		got, err := e.st.NextCommand(c, "earpiece", time.Second)
		if err != nil || string(got) != want {
			t.Fatalf("next: %q %v, want %q", got, err, want)
		}
	}
	start := time.Now()
	if got, err := e.st.NextCommand(c, "earpiece", time.Second); err != nil || got != nil {
		t.Fatalf("empty queue: %q %v", got, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("empty queue waited %v", d)
	}
	if got, _ := e.st.NextCommand(c, "earpiece-b", time.Second); string(got) != "other" {
		t.Fatalf("other node's queue: %q", got)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = e.st.PutReply(c, "cmd-1", []byte("done"), time.Minute)
	}()
	if got, err := e.st.AwaitReply(c, "cmd-1", 2*time.Second); err != nil || string(got) != "done" {
		t.Fatalf("reply: %q %v", got, err)
	}
}

// TestStandbyMark: the standby's presence lasts its TTL unless renewed.
func TestStandbyMark(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if name, err := e.st.StandbyPresent(c, "n"); err != nil || name != "" {
		t.Fatalf("no standby: %q %v", name, err)
	}
	if err := e.st.MarkStandby(c, "n", "b", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if name, _ := e.st.StandbyPresent(c, "n"); name != "b" {
		t.Fatalf("standby %q", name)
	}
	time.Sleep(200 * time.Millisecond)
	if name, _ := e.st.StandbyPresent(c, "n"); name != "" {
		t.Fatalf("standby %q after its TTL", name)
	}
}
