package outbound

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/earpiece/earpiece/config"
)

// Webhook URLs come from the tenants' configuration; a URL naming this host or its link (the
// cloud metadata service at 169.254.169.254, a loopback admin port) would make earpiece a way
// in (SSRF). config.CheckWebhookURL refuses such addresses in the URL; the dialer refuses them
// at every connection, after name resolution, so that a name that later resolves to them (DNS
// rebinding) is refused too. Redirects are never followed (see New).

// newClient is the hub's default HTTP client: no redirects, and unless allowLocal no
// connection to a local address (config.LocalAddress). A proxy from the environment
// (HTTPS_PROXY, HTTP_PROXY) is the operator's and is dialled as it is; the address check then
// applies to the targets that bypass it (NO_PROXY).
func newClient(allowLocal bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if !allowLocal {
		proxies := proxyAddrs()
		guarded := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseLocal}
		plain := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if proxies[addr] {
				return plain.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		}
	}
	return &http.Client{
		Transport: t,
		// A 3xx is an answer like any other non-2xx: a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refuseLocal is a net.Dialer Control: it runs on the resolved address of every connection.
func refuseLocal(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook target %s: not an IP address and port", address)
	}
	if config.LocalAddress(ap.Addr()) {
		return fmt.Errorf("webhook target %s is a loopback, link-local or unspecified address: refused (allow_local permits it)", ap.Addr())
	}
	return nil
}

// proxyAddrs are the host:port of the proxies the environment names for http and https.
func proxyAddrs() map[string]bool {
	out := map[string]bool{}
	for _, scheme := range []string{"http", "https"} {
		u, err := http.ProxyFromEnvironment(&http.Request{URL: &url.URL{Scheme: scheme, Host: "webhook.invalid"}})
		if err != nil || u == nil {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
		}
		out[net.JoinHostPort(u.Hostname(), port)] = true
	}
	return out
}
