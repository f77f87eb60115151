package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Instances, the node lease and fencing.
//
// A node is one Asterisk and the Stasis application earpiece runs on it (the app name names the
// node). Exactly one instance runs a node's sessions at a time: the holder of the node's lease, a
// hash in Redis with a short TTL that its holder renews (app/lease.go). Every acquisition takes
// the next number of the node's epoch counter, so (instance, epoch) names one incarnation of an
// owner: a restarted instance, even under the same name, is a new owner.
//
// A session record carries the owner that runs it (Session.Instance, Session.Epoch). The owner's
// writes are compare-and-set on that pair (UpdateOwnedSession, EndOwnedSession), and a new owner
// takes a session over with AdoptSession, a compare-and-set from the owner it found: an owner that
// was declared gone and comes back (a paused process, a partition) finds its writes refused with
// ErrNotOwner, whatever it believes.

// Owner identifies who runs a session: an instance name and the lease epoch it runs under.
type Owner struct {
	Instance string `json:"instance"`
	Epoch    int64  `json:"epoch"`
}

// Owner is the owner recorded on the session.
func (s *Session) Owner() Owner { return Owner{Instance: s.Instance, Epoch: s.Epoch} }

func (o Owner) String() string { return o.Instance + "#" + strconv.FormatInt(o.Epoch, 10) }

// Lease is a node's lease as its holder knows it.
type Lease struct {
	Node     string    `json:"node"`
	Instance string    `json:"instance"`
	Epoch    int64     `json:"epoch"`
	Since    time.Time `json:"since"` // when this epoch began
}

// Owner is the owner the lease makes its holder.
func (l Lease) Owner() Owner { return Owner{Instance: l.Instance, Epoch: l.Epoch} }

// acquireScript takes the node's lease. KEYS[1] lease hash, KEYS[2] epoch counter; ARGV[1]
// instance, ARGV[2] TTL ms, ARGV[3] now (ms), ARGV[4] "1" to take over a lease held under the
// same instance name (a restart of that instance). Returns {1, epoch, since} when taken, {0,
// holder instance, holder epoch} when held by another.
var acquireScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'instance')
if cur and not (ARGV[4] == '1' and cur == ARGV[1]) then
  return {0, cur, redis.call('HGET', KEYS[1], 'epoch') or '0'}
end
local e = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'instance', ARGV[1], 'epoch', e, 'since', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tostring(e), ARGV[3]}
`)

// renewScript extends the lease if its holder still holds it. A lease that lapsed while nobody
// took it (Redis was out of reach of everyone) is taken again under the same epoch, if the
// counter shows nobody acquired it since. KEYS as acquireScript; ARGV[1] instance, ARGV[2] epoch,
// ARGV[3] TTL ms, ARGV[4] since (ms). Returns 1 held, 0 lost.
var renewScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'instance')
if cur then
  if cur == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'instance', ARGV[1], 'epoch', ARGV[2], 'since', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

// releaseLeaseScript deletes the lease if its holder still holds it. Returns 1 or 0.
var releaseLeaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'instance') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

func checkLease(node, instance string, ttl time.Duration) error {
	if err := checkID("node", node); err != nil {
		return err
	}
	if err := checkID("instance", instance); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: lease TTL %v", ErrInvalid, ttl)
	}
	return nil
}

// AcquireLease takes node's lease for instance for ttl if nobody holds it (or, with sameName,
// if it is held under instance's own name: that instance restarted). It returns the lease and
// true when taken, or the holder's lease (Since zero) and false.
func (s *Store) AcquireLease(ctx context.Context, node, instance string, ttl time.Duration, sameName bool) (Lease, bool, error) {
	if err := checkLease(node, instance, ttl); err != nil {
		return Lease{}, false, fmt.Errorf("acquire lease of %s: %w", node, err)
	}
	now := s.clock()
	flag := "0"
	if sameName {
		flag = "1"
	}
	res, err := acquireScript.Run(ctx, s.rdb, []string{leaseKey(node), leaseEpochKey(node)},
		instance, millis(ttl), now.UnixMilli(), flag).Slice()
	if err != nil {
		return Lease{}, false, fmt.Errorf("acquire lease of %s: %w", node, err)
	}
	if len(res) != 3 {
		return Lease{}, false, fmt.Errorf("acquire lease of %s: unexpected answer %v", node, res)
	}
	ok, _ := res[0].(int64)
	if ok != 1 {
		holder, _ := res[1].(string)
		epoch, _ := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
		return Lease{Node: node, Instance: holder, Epoch: epoch}, false, nil
	}
	epoch, err := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	if err != nil {
		return Lease{}, false, fmt.Errorf("acquire lease of %s: epoch %v: %w", node, res[1], err)
	}
	return Lease{Node: node, Instance: instance, Epoch: epoch, Since: time.UnixMilli(now.UnixMilli()).UTC()}, true, nil
}

// RenewLease extends l for ttl. It reports false when l is lost: another owner holds the node's
// lease, or took it since (the lease may have lapsed and been taken and released meanwhile).
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (bool, error) {
	if err := checkLease(l.Node, l.Instance, ttl); err != nil {
		return false, fmt.Errorf("renew lease of %s: %w", l.Node, err)
	}
	n, err := renewScript.Run(ctx, s.rdb, []string{leaseKey(l.Node), leaseEpochKey(l.Node)},
		l.Instance, l.Epoch, millis(ttl), l.Since.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease of %s: %w", l.Node, err)
	}
	return n == 1, nil
}

// ReleaseLease gives l up, if it is still held (a standby may then take it at once).
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	if err := checkLease(l.Node, l.Instance, time.Millisecond); err != nil {
		return fmt.Errorf("release lease of %s: %w", l.Node, err)
	}
	if err := releaseLeaseScript.Run(ctx, s.rdb, []string{leaseKey(l.Node)}, l.Instance, l.Epoch).Err(); err != nil {
		return fmt.Errorf("release lease of %s: %w", l.Node, err)
	}
	return nil
}

// LeaseHolder returns node's lease as Redis has it; ErrNotFound when nobody holds it.
func (s *Store) LeaseHolder(ctx context.Context, node string) (Lease, error) {
	if err := checkID("node", node); err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", node, err)
	}
	m, err := s.rdb.HGetAll(ctx, leaseKey(node)).Result()
	if err != nil {
		return Lease{}, fmt.Errorf("lease of %s: %w", node, err)
	}
	if m["instance"] == "" {
		return Lease{}, fmt.Errorf("lease of %s: %w", node, ErrNotFound)
	}
	epoch, _ := strconv.ParseInt(m["epoch"], 10, 64)
	since, _ := strconv.ParseInt(m["since"], 10, 64)
	return Lease{Node: node, Instance: m["instance"], Epoch: epoch, Since: time.UnixMilli(since).UTC()}, nil
}

// MarkStandby records that instance waits as node's standby, for ttl (renewed while it waits).
// The active hands its sessions over at a graceful stop when a standby is there (see
// StandbyPresent) instead of ending them.
func (s *Store) MarkStandby(ctx context.Context, node, instance string, ttl time.Duration) error {
	if err := checkLease(node, instance, ttl); err != nil {
		return fmt.Errorf("mark standby of %s: %w", node, err)
	}
	if err := s.rdb.Set(ctx, standbyKey(node), instance, ttl).Err(); err != nil {
		return fmt.Errorf("mark standby of %s: %w", node, err)
	}
	return nil
}

// StandbyPresent returns the name of an instance waiting as node's standby ("" for none).
func (s *Store) StandbyPresent(ctx context.Context, node string) (string, error) {
	v, err := s.rdb.Get(ctx, standbyKey(node)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("standby of %s: %w", node, err)
	}
	return v, nil
}

// AdoptSession makes to the owner of live session id, if from still owns it; the record is
// otherwise unchanged. It fails with ErrNotOwner when another owner has it (someone adopted it
// first) and ErrEnded when it has ended.
func (s *Store) AdoptSession(ctx context.Context, id string, from, to Owner) (Session, error) {
	out, err := s.modify(ctx, id, func(cur Session) (Session, bool, error) {
		if !cur.Live() {
			return cur, false, ErrEnded
		}
		if cur.Owner() != from {
			return cur, false, fmt.Errorf("%w: run by %s, not %s", ErrNotOwner, cur.Owner(), from)
		}
		next := cur.clone()
		next.Instance, next.Epoch = to.Instance, to.Epoch
		return next, true, nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("adopt session %s: %w", id, err)
	}
	return out, nil
}

// UpdateOwnedSession is UpdateSession for the session's owner o: it fails with ErrNotOwner,
// writing nothing, when the session is owned by someone else. fn may not change the owner.
func (s *Store) UpdateOwnedSession(ctx context.Context, id string, o Owner, fn func(*Session) error) (Session, error) {
	out, err := s.modify(ctx, id, func(cur Session) (Session, bool, error) {
		if !cur.Live() {
			return cur, false, ErrEnded
		}
		if cur.Owner() != o {
			return cur, false, fmt.Errorf("%w: run by %s, not %s", ErrNotOwner, cur.Owner(), o)
		}
		next := cur.clone()
		if err := fn(&next); err != nil {
			return cur, false, err
		}
		next.Instance, next.Epoch = cur.Instance, cur.Epoch
		return next, true, nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("update session %s: %w", id, err)
	}
	return out, nil
}

// EndOwnedSession is EndSession for the session's owner o: ending a live session owned by
// someone else fails with ErrNotOwner; an ended session is returned unchanged.
func (s *Store) EndOwnedSession(ctx context.Context, id string, o Owner, reason string, at time.Time) (Session, error) {
	out, err := s.modify(ctx, id, func(cur Session) (Session, bool, error) {
		if !cur.Live() {
			return cur, false, nil
		}
		if cur.Owner() != o {
			return cur, false, fmt.Errorf("%w: run by %s, not %s", ErrNotOwner, cur.Owner(), o)
		}
		next := cur.clone()
		if at.IsZero() {
			at = s.clock()
		}
		next.stopModeClock(at)
		next.State, next.EndedAt, next.EndReason = StateEnded, at, reason
		return next, true, nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("end session %s: %w", id, err)
	}
	return out, nil
}

// Commands to a node's active instance: an instance that does not run a node's sessions (a
// standby, or an instance of another node) hands the API's session-changing requests to the
// node's active through Redis. PushCommand queues one (the queue outlives an idle node by ttl),
// NextCommand takes the oldest (waiting up to wait), PutReply and AwaitReply carry the answer
// back under the command's id. Payloads are the caller's (JSON).

// PushCommand queues payload for node's active instance.
func (s *Store) PushCommand(ctx context.Context, node string, payload []byte, ttl time.Duration) error {
	if err := checkID("node", node); err != nil {
		return fmt.Errorf("push command to %s: %w", node, err)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, commandsKey(node), payload)
		p.PExpire(ctx, commandsKey(node), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("push command to %s: %w", node, err)
	}
	return nil
}

// NextCommand takes the oldest command queued for node, waiting up to wait (at least 1 s, Redis'
// BRPOP granularity is fine below that on Redis 6+); nil when none came.
func (s *Store) NextCommand(ctx context.Context, node string, wait time.Duration) ([]byte, error) {
	v, err := s.rdb.BRPop(ctx, wait, commandsKey(node)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("next command of %s: %w", node, err)
	}
	return []byte(v[1]), nil
}

// PutReply stores the answer to command id for ttl.
func (s *Store) PutReply(ctx context.Context, id string, payload []byte, ttl time.Duration) error {
	if err := checkID("command id", id); err != nil {
		return fmt.Errorf("reply %s: %w", id, err)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, replyKey(id), payload)
		p.PExpire(ctx, replyKey(id), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reply %s: %w", id, err)
	}
	return nil
}

// AwaitReply waits up to wait for the answer to command id; nil when none came.
func (s *Store) AwaitReply(ctx context.Context, id string, wait time.Duration) ([]byte, error) {
	v, err := s.rdb.BRPop(ctx, wait, replyKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("await reply %s: %w", id, err)
	}
	return []byte(v[1]), nil
}
