package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

func TestDirectoryRevisionsAndAnnouncements(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	if _, err := e.st.Directory(c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty Redis: Directory error = %v, want ErrNotFound", err)
	}
	if rev, err := e.st.DirectoryRev(c); err != nil || rev != 0 {
		t.Fatalf("empty Redis: DirectoryRev = %d, %v", rev, err)
	}
	subCtx, stop := context.WithCancel(c)
	changes := e.st.SubscribeDirectory(subCtx)
	// The subscription is live once Redis counts its subscriber.
	waitUntil(t, func() bool {
		n, _ := e.rdb.PubSubNumSub(c, "earpiece:v1:directory:changed").Result()
		return n["earpiece:v1:directory:changed"] == 1
	})

	doc, err := e.st.UpdateDirectory(c, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
		if cur.Rev != 0 || cur.Doc != nil {
			t.Errorf("first change saw %+v", cur)
		}
		return store.DirectoryChange{Doc: []byte("one"), FileHash: "f1", By: "file"}, nil
	})
	if err != nil || doc.Rev != 1 || string(doc.Doc) != "one" || doc.FileHash != "f1" || doc.UpdatedBy != "file" {
		t.Fatalf("first change = %+v, %v", doc, err)
	}
	select {
	case rev := <-changes:
		if rev != 1 {
			t.Errorf("announced revision %d, want 1", rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no announcement of revision 1")
	}
	// A change that is not from the file keeps the file's hash; Skip writes nothing.
	doc, err = e.st.UpdateDirectory(c, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
		return store.DirectoryChange{Doc: append(cur.Doc, '2'), By: "key:admin"}, nil
	})
	if err != nil || doc.Rev != 2 || string(doc.Doc) != "one2" || doc.FileHash != "f1" {
		t.Fatalf("second change = %+v, %v", doc, err)
	}
	doc, err = e.st.UpdateDirectory(c, func(store.DirectoryDoc) (store.DirectoryChange, error) {
		return store.DirectoryChange{Skip: true}, nil
	})
	if err != nil || doc.Rev != 2 {
		t.Fatalf("skipped change = %+v, %v", doc, err)
	}
	// A refused change writes nothing and returns the refusal.
	refused := errors.New("refused")
	if _, err := e.st.UpdateDirectory(c, func(store.DirectoryDoc) (store.DirectoryChange, error) {
		return store.DirectoryChange{}, refused
	}); !errors.Is(err, refused) {
		t.Fatalf("refused change: %v", err)
	}
	if got, err := e.st.Directory(c); err != nil || got.Rev != 2 || string(got.Doc) != "one2" {
		t.Fatalf("after refusal: %+v, %v", got, err)
	}
	stop()
	for range changes { // closes after its context ends
	}
}

// Writers on many instances at once: each change sees the one before it, none is lost.
func TestDirectoryWritersAreSerialised(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	const writers = 16
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			_, err := e.st.UpdateDirectory(c, func(cur store.DirectoryDoc) (store.DirectoryChange, error) {
				time.Sleep(time.Millisecond) // a validation's worth of work between read and write
				return store.DirectoryChange{Doc: append(cur.Doc, 'x')}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := e.st.Directory(c)
	if err != nil || got.Rev != writers || len(got.Doc) != writers {
		t.Fatalf("after %d writers: rev %d, %d bytes, %v", writers, got.Rev, len(got.Doc), err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
