package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Redis URL schemes (redis.url):
//
//	redis://[user:password@]host:port[/db][?options]             one server (rediss: TLS)
//	redis-sentinel://[user:password@]host:port,host:port[/db]?master=NAME[&options]
//	                                                              the primary Sentinel names
//	                                                              (rediss-sentinel: TLS)
//	redis-cluster://[user:password@]host:port,host:port[?options] a Redis Cluster
//	                                                              (rediss-cluster: TLS)
//
// For Sentinel the user and password are the data servers' (the primary's and replicas');
// the Sentinels' own, if they need one, are the sentinel_username and sentinel_password
// options. Options are go-redis's (dial_timeout, pool_size, ...). A host without a port takes
// 6379 (26379 for Sentinel). cmd/earpiece builds the client (redisurl.go).
const (
	RedisScheme         = "redis"
	RedisTLSScheme      = "rediss"
	RedisSentinelScheme = "redis-sentinel"
	RedisSentinelTLS    = "rediss-sentinel"
	RedisClusterScheme  = "redis-cluster"
	RedisClusterTLS     = "rediss-cluster"
)

// RedisKind is what a redis.url addresses: "single", "sentinel" or "cluster".
func RedisKind(scheme string) (kind string, tls bool, ok bool) {
	switch scheme {
	case RedisScheme:
		return "single", false, true
	case RedisTLSScheme:
		return "single", true, true
	case RedisSentinelScheme:
		return "sentinel", false, true
	case RedisSentinelTLS:
		return "sentinel", true, true
	case RedisClusterScheme:
		return "cluster", false, true
	case RedisClusterTLS:
		return "cluster", true, true
	}
	return "", false, false
}

// RedisHosts splits a Sentinel or Cluster URL's host list ("h1:26379,h2:26379"), giving each
// host without a port defaultPort.
func RedisHosts(hostList, defaultPort string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(hostList, ",") {
		if h == "" {
			return nil, fmt.Errorf("empty host in %q", hostList)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port (or a bare IPv6 address in brackets).
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
			if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
				return nil, fmt.Errorf("host %q: want host:port", h)
			}
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("host %q: want host:port", h)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// ParseRedisURL parses a redis.url of any scheme: u is the URL with its host list replaced by
// the first host (net/url cannot parse a list: "h1:7000,h2:7001" is a bad port to it), hosts
// the list as written.
func ParseRedisURL(raw string) (u *url.URL, hosts string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, "", fmt.Errorf("%q: want an absolute URL with a host", RedactURL(raw))
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo := ""
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hosts = authority[:at+1], authority[at+1:]
	} else {
		hosts = authority
	}
	first := hosts
	if i := strings.IndexByte(hosts, ','); i >= 0 {
		first = hosts[:i]
	}
	u, err = url.Parse(scheme + "://" + userinfo + first + tail)
	if err != nil {
		return nil, "", fmt.Errorf("%s", redactError(err, raw))
	}
	return u, hosts, nil
}

// CheckRedisURL reports what is wrong with a redis.url, the password never shown.
func CheckRedisURL(raw string) error {
	u, hosts, err := ParseRedisURL(raw)
	if err != nil {
		return err
	}
	kind, _, ok := RedisKind(u.Scheme)
	if !ok {
		return fmt.Errorf("%q: scheme must be redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", RedactURL(raw))
	}
	if hosts == "" {
		return fmt.Errorf("%q: want an absolute URL with a host", RedactURL(raw))
	}
	switch kind {
	case "sentinel":
		if _, err := RedisHosts(hosts, "26379"); err != nil {
			return fmt.Errorf("%q: %v", RedactURL(raw), err)
		}
		if u.Query().Get("master") == "" {
			return fmt.Errorf("%q: a Sentinel URL needs ?master=<the primary's name>", RedactURL(raw))
		}
	case "cluster":
		if _, err := RedisHosts(hosts, "6379"); err != nil {
			return fmt.Errorf("%q: %v", RedactURL(raw), err)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return fmt.Errorf("%q: a Redis Cluster has database 0 only", RedactURL(raw))
		}
	default:
		if strings.Contains(hosts, ",") {
			return fmt.Errorf("%q: several hosts: use redis-sentinel:// or redis-cluster://", RedactURL(raw))
		}
	}
	return nil
}
