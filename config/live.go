package config

import "sync/atomic"

// Source hands out the directory in force. A *Directory is a Source of itself (a fixed
// directory, as tests and one-shot commands use); a *Live is the one that changes at run time,
// as administrators edit the directory through the API or reload the file.
//
// Callers take Current once per decision and use that snapshot throughout, so that one
// decision never mixes two versions of the directory.
type Source interface {
	Current() *Directory
}

// Current returns d itself: a fixed directory.
func (d *Directory) Current() *Directory { return d }

// Live is the directory in force on this instance, swapped whole when it changes. The zero
// value holds no directory.
type Live struct {
	cur atomic.Pointer[liveRev]
}

type liveRev struct {
	d   *Directory
	rev int64
}

// NewLive returns a Live holding d at revision rev.
func NewLive(d *Directory, rev int64) *Live {
	l := &Live{}
	l.Set(d, rev)
	return l
}

// Current returns the directory in force (nil before the first Set).
func (l *Live) Current() *Directory {
	if c := l.cur.Load(); c != nil {
		return c.d
	}
	return nil
}

// Snapshot returns the directory in force and its revision, read together (Current and Rev
// read apart may straddle a change).
func (l *Live) Snapshot() (*Directory, int64) {
	if c := l.cur.Load(); c != nil {
		return c.d, c.rev
	}
	return nil, 0
}

// Rev is the revision of the directory in force (the store's counter; 0 for none).
func (l *Live) Rev() int64 {
	if c := l.cur.Load(); c != nil {
		return c.rev
	}
	return 0
}

// Set puts d in force at revision rev, whatever is in force.
func (l *Live) Set(d *Directory, rev int64) { l.cur.Store(&liveRev{d, rev}) }

// Advance puts d in force at revision rev unless a later revision already is (two readers of
// the store racing must not put an older directory back). It reports whether it did.
func (l *Live) Advance(d *Directory, rev int64) bool {
	next := &liveRev{d, rev}
	for {
		c := l.cur.Load()
		if c != nil && c.rev >= rev {
			return false
		}
		if l.cur.CompareAndSwap(c, next) {
			return true
		}
	}
}
