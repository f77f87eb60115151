package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

func TestEvents(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)

	if id, err := e.st.LastEventID(c, "acme"); err != nil || id != "0-0" {
		t.Fatalf("LastEventID(empty) = %q, %v", id, err)
	}
	var ids []string
	for i := range 3 {
		id, err := e.st.PublishEvent(c, "acme", "call.started", fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := e.st.PublishEvent(c, "globex", "call.ended", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if ttl := e.rdb.PTTL(c, store.Prefix+"events:acme").Val(); ttl <= 0 || ttl > store.EventsTTL {
		t.Errorf("stream TTL = %v", ttl)
	}
	if id, err := e.st.LastEventID(c, "acme"); err != nil || id != ids[2] {
		t.Errorf("LastEventID = %q, %v; want %s", id, err, ids[2])
	}

	all, err := e.st.ReadEvents(c, "acme", "0", 0, 0)
	if err != nil || len(all) != 3 {
		t.Fatalf("ReadEvents(0) = %+v, %v", all, err)
	}
	for i, ev := range all {
		if ev.ID != ids[i] || ev.Type != "call.started" || string(ev.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	after, err := e.st.ReadEvents(c, "acme", ids[0], 0, 0)
	if err != nil || len(after) != 2 || after[0].ID != ids[1] {
		t.Errorf("ReadEvents(after first) = %+v, %v", after, err)
	}
	if page, err := e.st.ReadEvents(c, "acme", "0", 0, 1); err != nil || len(page) != 1 {
		t.Errorf("count 1: %+v, %v", page, err)
	}

	// Nothing new: a blocking read returns empty after about block.
	start := time.Now()
	none, err := e.st.ReadEvents(c, "acme", ids[2], 100*time.Millisecond, 10)
	if err != nil || len(none) != 0 || none == nil {
		t.Errorf("ReadEvents(at end) = %#v, %v", none, err)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > 2*time.Second {
		t.Errorf("blocking read returned after %v, want about 100ms", d)
	}

	// A blocked reader wakes up for a new event.
	got := make(chan []store.Event, 1)
	go func() {
		evs, err := e.st.ReadEvents(c, "acme", ids[2], 5*time.Second, 10)
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	time.Sleep(50 * time.Millisecond) // let XREAD BLOCK start; the read below has a deadline either way
	id4, err := e.st.PublishEvent(c, "acme", "call.ended", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case evs := <-got:
		if len(evs) != 1 || evs[0].ID != id4 {
			t.Errorf("woken reader got %+v, want %s", evs, id4)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked reader not woken")
	}

	if _, err := e.st.ReadEvents(c, "acme", "nope", 0, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad id: %v, want ErrInvalid", err)
	}
	for _, id := range []string{"0", "0-0", "1700000000000-3", "$"} {
		if _, err := e.st.ReadEvents(c, "acme", id, 0, 0); err != nil {
			t.Errorf("ReadEvents(%q): %v", id, err)
		}
	}
}

func TestEventsAreTrimmed(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for range store.EventsMaxLen + 500 {
		if _, err := e.st.PublishEvent(c, "acme", "x", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.rdb.XLen(c, store.Prefix+"events:acme").Val(); n < store.EventsMaxLen || n > store.EventsMaxLen+200 {
		t.Errorf("stream length = %d, want about %d", n, store.EventsMaxLen)
	}
}
