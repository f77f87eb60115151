package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/earpiece/earpiece/store"
)

// The journal keeps, in order, the writes a session's teardown could not make because Redis did
// not answer, and replays them once it does (journalreplay.go): the session's last audit entry
// (its end, or the refused join), the record ended (and the supervision.ended notification that
// follows it), the talker slot given back. Without it a session ending during an outage stayed
// active in Redis until its TTL (12 h), its end was never audited nor notified, and its talker
// slot refused every other supervisor's whisper (talker_busy) as long.
//
// Only the consequences of what already happened are journaled: a call that ended, a
// supervisor who hung up. A join or a mode switch is still refused when its audit entry cannot
// be written ("an action that cannot be audited is not done"), audibly.
//
// Replaying is idempotent, so an entry replayed twice (a write whose answer was lost, a crash
// before the journal recorded it done) writes once: audit entries carry a stable
// store.AuditEntry.Once ("<session>:<action>:<outcome>"), ending a record is a compare-and-set
// (EndSession leaves an ended record as it is), a release deletes the claim only while the
// session holds it.
//
// The journal is bounded (JournalOptions.Max entries; past it new entries are dropped and
// counted). With a directory it is also a file, journal.jsonl, appended and fsynced before an
// entry counts as journaled, so an instance that crashes or is stopped during the outage
// replays it when it starts again; without one it lives in memory only.

// Journal operations.
const (
	journalAudit   = "audit"   // append Audit (with its Once)
	journalEnd     = "end"     // end session record Session for Reason at At, then notify
	journalRelease = "release" // release claim Key held by Owner
)

// DefaultJournalMax bounds a journal whose JournalOptions.Max is zero.
const DefaultJournalMax = 10000

// JournalFile is the name of the journal's file in its directory.
const JournalFile = "journal.jsonl"

// ErrJournalFull: the journal holds JournalOptions.Max entries; the write is lost.
var ErrJournalFull = errors.New("journal full")

// JournalEntry is one write to make when Redis answers.
type JournalEntry struct {
	Seq     uint64            `json:"seq"`
	Op      string            `json:"op"`
	Session string            `json:"session,omitempty"`
	Tenant  string            `json:"tenant,omitempty"`
	Audit   *store.AuditEntry `json:"audit,omitempty"`
	// Once is the audit entry's store.AuditEntry.Once (not part of its JSON).
	Once   string    `json:"once,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"` // when the record ended
	Key    string    `json:"key,omitempty"`
	Owner  string    `json:"owner,omitempty"`
	// Queued is when the entry was journaled.
	Queued time.Time `json:"queued"`
}

// JournalOptions configure OpenJournal.
type JournalOptions struct {
	// Dir, when set, keeps the journal in Dir/journal.jsonl as well (created if missing; one
	// directory per instance). Empty: memory only.
	Dir string
	// Max bounds the entries waiting (DefaultJournalMax).
	Max int
}

// Journal is the ordered list of writes waiting for Redis. It is safe for concurrent use.
type Journal struct {
	max  int
	path string

	mu      sync.Mutex
	pending []JournalEntry
	next    uint64
	file    *os.File
	// sessions counts the pending entries of each session: a session with entries waiting
	// journals its later writes too, so they are made in order.
	sessions map[string]int
	kick     chan struct{}
	// counters
	added, replayed, dropped, lost uint64
}

// OpenJournal opens (or creates) a journal. With a directory, the entries a previous run left
// pending are loaded, in order, to be replayed.
func OpenJournal(opts JournalOptions) (*Journal, error) {
	j := &Journal{max: opts.Max, sessions: map[string]int{}, kick: make(chan struct{}, 1), next: 1}
	if j.max <= 0 {
		j.max = DefaultJournalMax
	}
	if opts.Dir == "" {
		return j, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	j.path = filepath.Join(opts.Dir, JournalFile)
	if err := j.load(); err != nil {
		return nil, err
	}
	if err := j.rewrite(); err != nil {
		return nil, err
	}
	if len(j.pending) > 0 {
		j.signal()
	}
	return j, nil
}

// journalLine is one line of the file: an entry journaled, or one made (done).
type journalLine struct {
	Put  *JournalEntry `json:"put,omitempty"`
	Done uint64        `json:"done,omitempty"`
}

// load reads the file's pending entries. A torn last line (a crash while writing it) is the
// entry that was never acknowledged: skipped.
func (j *Journal) load() error {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading journal: %w", err)
	}
	done := map[uint64]bool{}
	var puts []JournalEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l journalLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue // torn
		}
		switch {
		case l.Put != nil:
			puts = append(puts, *l.Put)
		case l.Done != 0:
			done[l.Done] = true
		}
	}
	for _, e := range puts {
		if e.Seq >= j.next {
			j.next = e.Seq + 1
		}
		if !done[e.Seq] {
			j.pending = append(j.pending, e)
			j.sessions[e.Session]++
		}
	}
	return nil
}

// rewrite replaces the file with the pending entries alone (compaction), durably.
func (j *Journal) rewrite() error {
	if j.path == "" {
		return nil
	}
	if j.file != nil {
		_ = j.file.Close()
		j.file = nil
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := range j.pending {
		if err := writeLine(w, journalLine{Put: &j.pending[i]}); err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	j.file, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func writeLine(w interface{ Write([]byte) (int, error) }, l journalLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Close closes the journal's file (pending entries stay in it for the next start).
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		return nil
	}
	err := j.file.Close()
	j.file = nil
	return err
}

// Len is the number of entries waiting.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// Pending returns a copy of the entries waiting, in order.
func (j *Journal) Pending() []JournalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]JournalEntry(nil), j.pending...)
}

// JournalStats counts a journal's entries since it was opened.
type JournalStats struct {
	Pending  int
	Added    uint64 // journaled
	Replayed uint64 // written to Redis by a replay (or found written already)
	Dropped  uint64 // refused for good by the store (an invalid entry, a record gone)
	Lost     uint64 // not journaled: the journal was full, or its file could not be written
}

// Stats returns the journal's counters.
func (j *Journal) Stats() JournalStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return JournalStats{Pending: len(j.pending), Added: j.added, Replayed: j.replayed, Dropped: j.dropped, Lost: j.lost}
}

// hasSession reports whether session id has entries waiting.
func (j *Journal) hasSession(id string) bool {
	if id == "" {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sessions[id] > 0
}

// add journals e (numbered here) and wakes the replay.
func (j *Journal) add(e JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) >= j.max {
		j.lost++
		return fmt.Errorf("%w (%d entries)", ErrJournalFull, j.max)
	}
	e.Seq = j.next
	if j.file != nil {
		// Durable before it counts: a crash now replays it at the next start.
		if err := writeLine(j.file, journalLine{Put: &e}); err != nil {
			j.lost++
			return fmt.Errorf("journal: %w", err)
		}
		if err := j.file.Sync(); err != nil {
			j.lost++
			return fmt.Errorf("journal: %w", err)
		}
	}
	j.next++
	j.pending = append(j.pending, e)
	j.sessions[e.Session]++
	j.added++
	j.signal()
	return nil
}

// front returns the oldest entry waiting.
func (j *Journal) front() (JournalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 {
		return JournalEntry{}, false
	}
	return j.pending[0], true
}

// done removes the oldest entry, seq, once it was written (or dropped for good).
func (j *Journal) done(seq uint64, dropped bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) == 0 || j.pending[0].Seq != seq {
		return
	}
	e := j.pending[0]
	j.pending = j.pending[1:]
	if j.sessions[e.Session]--; j.sessions[e.Session] <= 0 {
		delete(j.sessions, e.Session)
	}
	if dropped {
		j.dropped++
	} else {
		j.replayed++
	}
	if j.file == nil {
		return
	}
	if len(j.pending) == 0 {
		// Everything is written: start the file afresh, so it never grows past one outage.
		_ = j.rewrite()
		return
	}
	// Not synced: a lost "done" only means a replay more, which writes nothing.
	_ = writeLine(j.file, journalLine{Done: seq})
}

// signal wakes the replay (never blocks). Called with mu held or not.
func (j *Journal) signal() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}
