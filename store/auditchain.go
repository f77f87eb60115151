package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The audit trail of each tenant is a hash chain. Every entry carries its number in the chain
// (seq, from 1), the hash of the entry before it (prev; "" for the first) and its own hash: the
// SHA-256 of the canonical encoding of all its stream fields but hash itself (auditHash), prev
// and seq included. Editing an entry changes its hash; deleting, inserting or moving one breaks
// the next entry's prev and seq. VerifyAudit recomputes the chain and names the first entry that
// does not verify.
//
// Appending reads the chain's head (the stream's last entry) and then writes the new entry with
// a compare-and-set script that appends only if the last entry is still that head, so two
// appenders never link to the same head: the loser retries on the new head. The hash is
// computed here, not in Lua, because Redis' Lua has no SHA-256.
//
// Retention trimming (by the Redis server's clock, see audit.go) drops the oldest entries in the
// same transaction and records a checkpoint: the seq and hash of the last entry dropped, HMAC-
// signed with Options.AuditKey. Verification starts from it: the first remaining entry must link
// to the checkpoint, and the checkpoint's signature must hold, so a forged start is detected.
//
// What a chain cannot show on its own is truncation at the end: deleting the newest entries
// leaves a valid, shorter chain. VerifyAudit reports the head (seq and hash) so that whoever
// needs that guarantee records it elsewhere and compares.
//
// Repeats (the folded refusals of a burst) are a counter outside the stream and outside the
// chain; the entry that carries them is chained.

// auditHashVersion starts every canonical encoding, so a later encoding cannot collide with it.
const auditHashVersion = "earpiece-audit-v1"

// auditMaxAttempts bounds the optimistic appends of one entry: every attempt that fails lost to
// another appender that succeeded, so the chain as a whole always makes progress; the bound (and
// the caller's ctx) only keep one unlucky appender from trying for ever.
const auditMaxAttempts = 100

// auditHash is the hex SHA-256 of an entry's canonical encoding: the version, then every stream
// field but hash, sorted by name, each name and value as a netstring ("<len>:<bytes>,"), so no
// two different field sets encode alike.
func auditHash(fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != fHash {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	h := sha256.New()
	netstring := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
		h.Write([]byte{','})
	}
	netstring(auditHashVersion)
	for _, k := range names {
		netstring(k)
		netstring(fields[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// messageFields is a stream entry's fields as strings.
func messageFields(m redis.XMessage) map[string]string {
	out := make(map[string]string, len(m.Values))
	for k, v := range m.Values {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// AuditCheckpoint is where a trimmed chain now starts: the last entry retention dropped.
type AuditCheckpoint struct {
	ID     string    `json:"id"`   // the dropped entry's stream id
	Seq    int64     `json:"seq"`  // its number in the chain
	Hash   string    `json:"hash"` // its hash: the first remaining entry's prev
	At     time.Time `json:"at"`   // when it was dropped (Redis server clock)
	Signed bool      `json:"signed"`
	sig    string
}

// checkpointMAC is the hex HMAC-SHA256 of a checkpoint. The tenant is part of it, so a
// checkpoint cannot be moved to another tenant's chain.
func checkpointMAC(key []byte, tenant, id string, seq int64, hash string) string {
	m := hmac.New(sha256.New, key)
	for _, part := range []string{"earpiece-audit-checkpoint-v1", tenant, id, strconv.FormatInt(seq, 10), hash} {
		m.Write([]byte(part))
		m.Write([]byte{'\n'})
	}
	return hex.EncodeToString(m.Sum(nil))
}

func decodeCheckpoint(v map[string]string) (*AuditCheckpoint, error) {
	if len(v) == 0 {
		return nil, nil
	}
	seq, err := strconv.ParseInt(v["seq"], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint seq: %w", err)
	}
	at, _ := strconv.ParseInt(v["at"], 10, 64)
	return &AuditCheckpoint{ID: v["id"], Seq: seq, Hash: v["hash"], At: time.UnixMilli(at).UTC(),
		Signed: v["sig"] != "", sig: v["sig"]}, nil
}

// auditHeadScript reads, in one step, what an append needs: the Redis server's time, the
// retention's cut (minid: entries below it go), the stream's last entry, the checkpoint when the
// stream is empty, and the last entry below the cut (the one the checkpoint will name).
// KEYS[1] stream, KEYS[2] checkpoint; ARGV[1] retention in ms.
// Returns {minid, last entry or {}, checkpoint field list, dropped entry or {}}.
var auditHeadScript = redis.NewScript(`
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local cp = {}
if #last == 0 then cp = redis.call('HGETALL', KEYS[2]) end
local dropped = {}
if minid > 0 then
  dropped = redis.call('XREVRANGE', KEYS[1], string.format('%.0f', minid - 1), '-', 'COUNT', 1)
else
  minid = 0
end
return {string.format('%.0f', minid), last, cp, dropped}
`)

// auditAppendScript appends an entry if the stream's last entry is still the one the entry
// links to (compare-and-set: otherwise another appender won, and nil is returned), trimming
// below minid and writing the checkpoint in the same step. With a third key (the entry's
// AuditEntry.Once marker, audit.go) it appends at most once: if the marker exists, the id it
// holds is returned and nothing is written; else the marker is set to the new entry's id.
// KEYS[1] stream, KEYS[2] checkpoint, KEYS[3] (optional) once marker; ARGV[1] expected last id
// ("" for none), ARGV[2] minid ("0": no trim), ARGV[3] the marker's TTL in ms, ARGV[4] n,
// ARGV[5..4+n] checkpoint field/value pairs, the rest the entry's.
var auditAppendScript = redis.NewScript(`
if KEYS[3] then
  local done = redis.call('GET', KEYS[3])
  if done then return done end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local lastid = ''
if #last > 0 then lastid = last[1][1] end
if lastid ~= ARGV[1] then return false end
local n = tonumber(ARGV[4])
if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 5, 4 + n)) end
local id
if ARGV[2] ~= '0' then
  id = redis.call('XADD', KEYS[1], 'MINID', ARGV[2], '*', unpack(ARGV, 5 + n))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5 + n))
end
if KEYS[3] then redis.call('SET', KEYS[3], id, 'PX', ARGV[3]) end
return id
`)

// scriptEntry decodes one stream entry as a script returns it: {id, {field, value, ...}}; ok
// is false for an empty list.
func scriptEntry(v any) (id string, fields map[string]string, ok bool) {
	list, _ := v.([]any)
	if len(list) == 0 {
		return "", nil, false
	}
	entry, _ := list[0].([]any)
	if len(entry) != 2 {
		return "", nil, false
	}
	id, _ = entry[0].(string)
	return id, pairs(entry[1]), true
}

// pairs decodes a flat {field, value, ...} list.
func pairs(v any) map[string]string {
	list, _ := v.([]any)
	out := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		out[k], _ = list[i+1].(string)
	}
	return out
}

// appendChained adds the entry with fields values to the tenant's chain and trims what is older
// than the retention, recording the checkpoint; it returns the stream id. Two round trips: read
// the head (auditHeadScript), then compare-and-set (auditAppendScript), again if another
// appender got in between. A non-empty once appends at most once per once (AuditEntry.Once).
func (s *Store) appendChained(ctx context.Context, tenant, once string, values map[string]string) (string, error) {
	keys := []string{auditKey(tenant), auditCheckpointKey(tenant)}
	if once != "" {
		keys = append(keys, auditOnceKey(tenant, once))
	}
	var id string
	attempt := func() error {
		res, err := auditHeadScript.Run(ctx, s.rdb, keys, millis(s.auditRetention)).Slice()
		if err != nil {
			return fmt.Errorf("reading the chain's head: %w", err)
		}
		if len(res) != 4 {
			return fmt.Errorf("reading the chain's head: %d values", len(res))
		}
		minID, _ := res[0].(string)
		var seq int64 // the link the entry continues: the last entry, the checkpoint, or the start
		var prev, lastID string
		if lid, last, ok := scriptEntry(res[1]); ok {
			lastID = lid
			if last[fHash] != "" { // else written before the chain existed: start after it
				if seq, err = strconv.ParseInt(last[fSeq], 10, 64); err != nil {
					return fmt.Errorf("seq of %s: %w", lid, err)
				}
				prev = last[fHash]
			}
		} else if cp, err := decodeCheckpoint(pairs(res[2])); err != nil {
			return err
		} else if cp != nil {
			seq, prev = cp.Seq, cp.Hash
		}
		var cp []any
		if did, dropped, ok := scriptEntry(res[3]); ok && dropped[fHash] != "" {
			n, _ := strconv.ParseInt(dropped[fSeq], 10, 64)
			sig := ""
			if len(s.auditKey) > 0 {
				sig = checkpointMAC(s.auditKey, tenant, did, n, dropped[fHash])
			}
			at, _ := strconv.ParseInt(minID, 10, 64)
			cp = []any{"id", did, "seq", n, "hash", dropped[fHash], "sig", sig,
				"at", at + s.auditRetention.Milliseconds()}
		}
		fields := make(map[string]string, len(values)+3)
		for k, v := range values {
			fields[k] = v
		}
		fields[fSeq], fields[fPrev] = strconv.FormatInt(seq+1, 10), prev
		fields[fHash] = auditHash(fields)
		args := make([]any, 0, 4+len(cp)+2*len(fields))
		args = append(args, lastID, minID, millis(AuditOnceTTL), len(cp))
		args = append(args, cp...)
		for k, v := range fields {
			args = append(args, k, v)
		}
		id, err = auditAppendScript.Run(ctx, s.rdb, keys, args...).Text()
		if errors.Is(err, redis.Nil) {
			return redis.TxFailedErr // another appender got in first: retry on the new head
		}
		return err
	}
	if err := s.optimisticN(ctx, auditMaxAttempts, attempt); err != nil {
		return "", err
	}
	return id, nil
}

// AuditLink names one entry of a chain.
type AuditLink struct {
	ID   string `json:"id"`
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// AuditBreak is the first place where a chain does not verify.
type AuditBreak struct {
	// ID and Seq are the entry that does not verify ("" and the checkpoint's seq when it is
	// the checkpoint).
	ID  string `json:"id"`
	Seq int64  `json:"seq"`
	// After is the last entry that verified ("" for the checkpoint or the chain's start).
	After string `json:"after"`
	// Problem: "edited" (the entry's hash is not that of its content), "missing" (entries
	// before it were deleted), "out_of_order" (the entry expected here comes later),
	// "broken_link" (its prev is not the hash of the entry before: that one was replaced),
	// "unchained" (an entry without a hash after chained ones), "checkpoint_signature" (the
	// checkpoint's signature does not hold), "checkpoint_unsigned" (a checkpoint exists but
	// no AuditKey is configured, or it carries no signature).
	Problem string `json:"problem"`
	Detail  string `json:"detail"`
}

// AuditVerification is the result of VerifyAudit.
type AuditVerification struct {
	OK bool `json:"ok"`
	// Entries is how many chained entries were checked; Unchained how many entries written
	// before the chain existed precede them (not checked).
	Entries   int64            `json:"entries"`
	Unchained int64            `json:"unchained"`
	Head      *AuditLink       `json:"head,omitempty"` // the last entry (or the checkpoint)
	Start     *AuditCheckpoint `json:"checkpoint,omitempty"`
	Broken    *AuditBreak      `json:"broken,omitempty"`
}

// auditScanBatch is how many entries VerifyAudit reads at a time.
const auditScanBatch = 1000

// VerifyAudit recomputes the tenant's chain from its checkpoint (or its start) to its head and
// reports the first entry that does not verify.
func (s *Store) VerifyAudit(ctx context.Context, tenant string) (AuditVerification, error) {
	if err := checkTenant(tenant); err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit: %w", err)
	}
	key := auditKey(tenant)
	// The checkpoint and the first entries are read together, so a trim in between cannot
	// make them disagree.
	var cpCmd *redis.MapStringStringCmd
	var first *redis.XMessageSliceCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cpCmd = p.HGetAll(ctx, auditCheckpointKey(tenant))
		first = p.XRangeN(ctx, key, "-", "+", auditScanBatch)
		return nil
	}); err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit of tenant %s: %w", tenant, err)
	}
	cp, err := decodeCheckpoint(cpCmd.Val())
	if err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit of tenant %s: %w", tenant, err)
	}
	v := AuditVerification{Start: cp}
	var (
		seq   int64 // the last verified link
		prev  string
		after string
	)
	if cp != nil {
		seq, prev = cp.Seq, cp.Hash
		v.Head = &AuditLink{ID: cp.ID, Seq: cp.Seq, Hash: cp.Hash}
		switch {
		case len(s.auditKey) == 0 || cp.sig == "":
			v.Broken = &AuditBreak{Seq: cp.Seq, Problem: "checkpoint_unsigned",
				Detail: "the chain was trimmed, and its checkpoint cannot be verified without a signature and the key"}
		case !hmac.Equal([]byte(cp.sig), []byte(checkpointMAC(s.auditKey, tenant, cp.ID, cp.Seq, cp.Hash))):
			v.Broken = &AuditBreak{Seq: cp.Seq, Problem: "checkpoint_signature",
				Detail: "the checkpoint's signature does not match its content"}
		}
		if v.Broken != nil {
			return v, nil
		}
	}
	msgs := first.Val()
	for len(msgs) > 0 {
		for i, m := range msgs {
			f := messageFields(m)
			n, _ := strconv.ParseInt(f[fSeq], 10, 64)
			brk := func(problem, detail string) {
				v.Broken = &AuditBreak{ID: m.ID, Seq: n, After: after, Problem: problem, Detail: detail}
			}
			switch {
			case f[fHash] == "" && v.Entries == 0 && cp == nil:
				v.Unchained++
				continue
			case f[fHash] == "":
				brk("unchained", "an entry without a hash after chained entries")
			case auditHash(f) != f[fHash]:
				brk("edited", "the entry's content does not match its hash")
			case n == seq+1 && f[fPrev] == prev:
			case n == seq+1:
				brk("broken_link", fmt.Sprintf("its prev is not the hash of entry %d: that entry was replaced", seq))
			case n <= seq:
				brk("out_of_order", fmt.Sprintf("entry %d comes after entry %d", n, seq))
			default:
				later, err := s.auditSeqLater(ctx, key, m.ID, seq+1, msgs[i+1:])
				if err != nil {
					return AuditVerification{}, fmt.Errorf("verify audit of tenant %s: %w", tenant, err)
				}
				if later != "" {
					brk("out_of_order", fmt.Sprintf("entry %d is expected here and comes later, at %s", seq+1, later))
				} else {
					brk("missing", fmt.Sprintf("entries %d to %d are missing", seq+1, n-1))
				}
			}
			if v.Broken != nil {
				return v, nil
			}
			seq, prev, after = n, f[fHash], m.ID
			v.Entries++
			v.Head = &AuditLink{ID: m.ID, Seq: n, Hash: prev}
		}
		if len(msgs) < auditScanBatch {
			break
		}
		msgs, err = s.rdb.XRangeN(ctx, key, "("+msgs[len(msgs)-1].ID, "+", auditScanBatch).Result()
		if err != nil {
			return AuditVerification{}, fmt.Errorf("verify audit of tenant %s: %w", tenant, err)
		}
	}
	v.OK = true
	return v, nil
}

// auditSeqLater returns the stream id of the entry numbered seq at or after the entries rest
// (then after the stream id from), "" when there is none.
func (s *Store) auditSeqLater(ctx context.Context, key, from string, seq int64, rest []redis.XMessage) (string, error) {
	want := strconv.FormatInt(seq, 10)
	last := from
	for {
		for _, m := range rest {
			if v, _ := m.Values[fSeq].(string); v == want {
				return m.ID, nil
			}
			last = m.ID
		}
		var err error
		rest, err = s.rdb.XRangeN(ctx, key, "("+last, "+", auditScanBatch).Result()
		if err != nil {
			return "", err
		}
		if len(rest) == 0 {
			return "", nil
		}
	}
}
