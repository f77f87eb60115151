package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/config"
)

// Redis clients for every redis.url earpiece takes (config/redisurl.go): one server
// (redis://, rediss://), the primary a set of Sentinels names (redis-sentinel://,
// rediss-sentinel://) and a Redis Cluster (redis-cluster://, rediss-cluster://), each as a
// redis.UniversalClient, which the store takes. The store keeps each multi-key change in one
// hash slot (store/keys.go), so every operation works on a Cluster; behind Sentinel a failover
// moves the client to the new primary by itself.
//
// Sentinel and Cluster URLs are turned into go-redis's own URL forms (ParseFailoverURL,
// ParseClusterURL: the first host, then addr= for each other) so that every go-redis option
// (dial_timeout, pool_size, ...) is read the same way as for one server.

// redisTarget is a parsed redis.url: exactly one of the options is set.
type redisTarget struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseRedisURL parses a redis.url of any scheme. Errors show the URL without its password.
func parseRedisURL(raw string) (redisTarget, error) {
	fail := func(err error) (redisTarget, error) {
		return redisTarget{}, fmt.Errorf("redis url %q: %s", config.RedactURL(raw), config.RedactError(err, raw))
	}
	if err := config.CheckRedisURL(raw); err != nil {
		return redisTarget{}, fmt.Errorf("redis url: %w", err)
	}
	u, hostList, err := config.ParseRedisURL(raw)
	if err != nil {
		return fail(err)
	}
	kind, tls, _ := config.RedisKind(u.Scheme)
	scheme := "redis"
	if tls {
		scheme = "rediss"
	}
	switch kind {
	case "sentinel":
		q := u.Query()
		master := q.Get("master")
		sentUser, sentPass := q.Get("sentinel_username"), q.Get("sentinel_password")
		q.Del("master")
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		q.Set("master_name", master)
		hosts, _ := config.RedisHosts(hostList, "26379")
		inner := url.URL{Scheme: scheme, Host: hosts[0], Path: u.Path, RawQuery: withAddrs(q, hosts[1:])}
		o, err := redis.ParseFailoverURL(inner.String())
		if err != nil {
			return fail(err)
		}
		o.SentinelUsername, o.SentinelPassword = sentUser, sentPass
		if u.User != nil {
			o.Username = u.User.Username()
			o.Password, _ = u.User.Password()
		}
		o.ContextTimeoutEnabled = true
		return redisTarget{failover: o}, nil
	case "cluster":
		hosts, _ := config.RedisHosts(hostList, "6379")
		inner := url.URL{Scheme: scheme, User: u.User, Host: hosts[0], RawQuery: withAddrs(u.Query(), hosts[1:])}
		o, err := redis.ParseClusterURL(inner.String())
		if err != nil {
			return fail(err)
		}
		o.ContextTimeoutEnabled = true
		return redisTarget{cluster: o}, nil
	default:
		o, err := redis.ParseURL(raw)
		if err != nil {
			return fail(err)
		}
		// Without it go-redis ignores ctx deadlines on reads and writes: a frozen Redis would
		// hold every call for its own timeout, whatever the session asked for.
		o.ContextTimeoutEnabled = true
		return redisTarget{single: o}, nil
	}
}

// withAddrs is q with an addr= for each further host, encoded.
func withAddrs(q url.Values, hosts []string) string {
	for _, h := range hosts {
		q.Add("addr", h)
	}
	return q.Encode()
}

// client makes a client of the target with pool size pool (0: go-redis's default).
func (t redisTarget) client(pool int) redis.UniversalClient {
	switch {
	case t.failover != nil:
		o := *t.failover
		if pool > 0 {
			o.PoolSize = pool
		}
		return redis.NewFailoverClient(&o)
	case t.cluster != nil:
		o := *t.cluster
		if pool > 0 {
			o.PoolSize = pool // per node
		}
		return redis.NewClusterClient(&o)
	default:
		o := *t.single
		if pool > 0 {
			o.PoolSize = pool
		}
		return redis.NewClient(&o)
	}
}

// Kind is "single", "sentinel" or "cluster".
func (t redisTarget) Kind() string {
	switch {
	case t.failover != nil:
		return "sentinel"
	case t.cluster != nil:
		return "cluster"
	default:
		return "single"
	}
}

// newRedisClients makes the Redis clients for redis.url rawURL, of any scheme: one for call
// handling, and one for the HTTP edge, which gets its own because every open event stream holds
// a connection while it waits, and dashboards must not starve call handling of connections.
func newRedisClients(rawURL string) (calls, edge redis.UniversalClient, err error) {
	t, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	return t.client(0), t.client(128), nil
}

// newDoctorClient is the client `earpiece doctor` checks Redis with: any scheme, one attempt
// per command (a doctor reports, it does not wait), 2 s to connect.
func newDoctorClient(rawURL string) (redis.UniversalClient, error) {
	t, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch {
	case t.failover != nil:
		t.failover.DialTimeout, t.failover.MaxRetries = 2*time.Second, -1
	case t.cluster != nil:
		t.cluster.DialTimeout, t.cluster.MaxRetries = 2*time.Second, -1
	default:
		t.single.DialTimeout, t.single.MaxRetries = 2*time.Second, -1
	}
	return t.client(0), nil
}
