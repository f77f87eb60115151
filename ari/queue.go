package ari

import (
	"fmt"
	"sync"
	"time"
)

// queue is the bounded, ordered queue between Run's reader and the Events
// channel. When events are lost, a Desynced notice is put in their place at
// once (it may exceed the limit by one; consecutive losses share it), so the
// app learns of a loss right after the last event it did get, even if no
// further event comes.
type queue struct {
	limit int
	space chan struct{} // token after a pop: the reader may retry
	ready chan struct{} // token after a push: the forwarder may pop

	mu       sync.Mutex
	ring     []Event // limit+1 slots: room for a notice beyond the limit
	head, n  int
	lost     uint64 // losses covered by the notice at the tail, if any
	firstWhy error
}

func newQueue(limit int) *queue {
	return &queue{
		limit: limit,
		space: make(chan struct{}, 1),
		ready: make(chan struct{}, 1),
		ring:  make([]Event, limit+1),
	}
}

// push appends ev if there is room. overflowing reports that the newest item
// is a Desynced notice the app has not reached yet: it is behind, and
// waiting for room is pointless.
func (q *queue) push(ev Event) (ok, overflowing bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.limit {
		return false, q.tailNotice() != nil
	}
	q.add(ev)
	return true, false
}

// pushLoss records that an event was lost here: it adds a Desynced notice,
// or counts the loss in the one already at the tail.
func (q *queue) pushLoss(base EventBase, why error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := q.tailNotice(); n != nil {
		q.lost++
		n.Err = lossError(q.lost, q.firstWhy)
		return
	}
	q.lost, q.firstWhy = 1, why
	q.add(&ConnectionEvent{EventBase: base, State: Desynced, Err: lossError(1, why)})
}

func lossError(n uint64, first error) error {
	return fmt.Errorf("%w: %d (first: %w)", ErrEventsLost, n, first)
}

// add appends ev; the caller holds mu and has checked there is a slot.
func (q *queue) add(ev Event) {
	q.ring[(q.head+q.n)%len(q.ring)] = ev
	q.n++
	signal(q.ready)
}

func (q *queue) tailNotice() *ConnectionEvent {
	if q.n == 0 {
		return nil
	}
	if ce, ok := q.ring[(q.head+q.n-1)%len(q.ring)].(*ConnectionEvent); ok && ce.State == Desynced {
		return ce
	}
	return nil
}

func (q *queue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, false
	}
	ev := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	signal(q.space)
	return ev, true
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// forward hands queued events to the app over the Events channel until done.
func (c *Client) forward(done <-chan struct{}) {
	for {
		ev, ok := c.q.pop()
		if !ok {
			select {
			case <-c.q.ready:
				continue
			case <-done:
				return
			}
		}
		select {
		case c.out <- ev:
		case <-done:
			return
		}
	}
}

// connBase is the EventBase of a ConnectionEvent.
func (c *Client) connBase() EventBase {
	return EventBase{Type: ConnectionEventType, Application: c.cfg.App, Timestamp: Time{time.Now()}}
}
