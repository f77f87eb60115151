package store_test

import (
	"fmt"
	"testing"

	"github.com/earpiece/earpiece/store"
)

func TestDeliveries(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)

	d := store.Delivery{ID: "msg_1", Tenant: "acme", URL: "https://crm.example/hook", Type: "call.started", Status: store.DeliveryPending}
	if err := e.st.SaveDelivery(c, d); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SaveDelivery(c, store.Delivery{ID: "msg_2", Tenant: "acme", Status: store.DeliveryPending}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SaveDelivery(c, store.Delivery{ID: "msg_9", Tenant: "globex", Status: store.DeliveryPending}); err != nil {
		t.Fatal(err)
	}
	// An update keeps the delivery's place.
	d.Status, d.Attempts, d.LastStatus, d.LastError = store.DeliveryRetrying, 1, 500, "HTTP 500"
	if err := e.st.SaveDelivery(c, d); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.Deliveries(c, "acme", 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("Deliveries = %+v, %v", got, err)
	}
	if got[0].ID != "msg_2" || got[1].ID != "msg_1" || got[1].Status != store.DeliveryRetrying || got[1].Attempts != 1 || got[1].LastError != "HTTP 500" {
		t.Errorf("Deliveries = %+v", got)
	}
	if got[1].CreatedAt.IsZero() || !got[1].UpdatedAt.Equal(e.clock.Now()) {
		t.Errorf("times not stamped: %+v", got[1])
	}
	if g, err := e.st.Deliveries(c, "globex", 1); err != nil || len(g) != 1 || g[0].ID != "msg_9" {
		t.Errorf("Deliveries(globex) = %+v, %v", g, err)
	}
	if g, err := e.st.Deliveries(c, "initech", 10); err != nil || g == nil || len(g) != 0 {
		t.Errorf("Deliveries(initech) = %#v, %v", g, err)
	}
	for _, k := range keys(t, e.rdb) {
		if ttl := e.rdb.PTTL(c, k).Val(); ttl <= 0 {
			t.Errorf("%s has no TTL", k)
		}
	}
}

func TestDeliveriesAreCapped(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	n := store.DeliveriesMaxLen + 20
	for i := range n {
		if err := e.st.SaveDelivery(c, store.Delivery{ID: fmt.Sprintf("msg_%d", i), Tenant: "acme", Status: store.DeliveryDelivered}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.st.Deliveries(c, "acme", 0)
	if err != nil || len(got) != store.DeliveriesMaxLen {
		t.Fatalf("len = %d, %v", len(got), err)
	}
	if got[0].ID != fmt.Sprintf("msg_%d", n-1) || got[len(got)-1].ID != "msg_20" {
		t.Errorf("kept %s..%s", got[0].ID, got[len(got)-1].ID)
	}
	if h := e.rdb.HLen(c, store.Prefix+"deliveries:{acme}").Val(); h != store.DeliveriesMaxLen {
		t.Errorf("hash holds %d records, want %d (trimmed ones deleted)", h, store.DeliveriesMaxLen)
	}
	if g, _ := e.st.Deliveries(c, "acme", 5); len(g) != 5 {
		t.Errorf("limit 5: %d", len(g))
	}
}
